"""Deploys a synthesized CDK app (cdk.out) to a local emulator's CloudFormation API: creates
the asset bucket, uploads the file assets where the template expects them, creates the
stack, waits for it, and prints its outputs as JSON. Usage: deploy_emulator.py CDK_OUT STACK.
Needs AWS_ENDPOINT_URL in the environment."""
import json
import os
import sys
import time

import botocore.session

cdk_out, stack = sys.argv[1], sys.argv[2]
endpoint = os.environ["AWS_ENDPOINT_URL"]
session = botocore.session.get_session()


def client(service):
    return session.create_client(service, endpoint_url=endpoint, region_name="us-east-1",
                                 aws_access_key_id="test", aws_secret_access_key="test")


s3, cfn, sts = client("s3"), client("cloudformation"), client("sts")
account = sts.get_caller_identity()["Account"]
assets = json.load(open(os.path.join(cdk_out, f"{stack}.assets.json")))
for asset in assets.get("files", {}).values():
    source = os.path.join(cdk_out, asset["source"]["path"])
    for dest in asset["destinations"].values():
        bucket = dest["bucketName"].replace("${AWS::AccountId}", account).replace("${AWS::Region}", "us-east-1")
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        with open(source, "rb") as f:
            s3.put_object(Bucket=bucket, Key=dest["objectKey"], Body=f.read())

template = open(os.path.join(cdk_out, f"{stack}.template.json")).read()
cfn.create_stack(StackName=stack, TemplateBody=template,
                 Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
deadline = time.time() + 300
while True:
    desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    status = desc["StackStatus"]
    if status.endswith("_COMPLETE") or status.endswith("_FAILED"):
        break
    if time.time() > deadline:
        sys.exit(f"stack {stack}: still {status} after 300 s")
    time.sleep(1)
if status != "CREATE_COMPLETE":
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}" for e in events if "FAILED" in e["ResourceStatus"]]
    sys.exit(f"stack {stack}: {status}\n" + "\n".join(reasons))
print(json.dumps({o["OutputKey"]: o["OutputValue"] for o in desc.get("Outputs", [])}))
