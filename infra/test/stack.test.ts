// Assertion tests of the synthesized template: every setting the pipeline depends on.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';

import { App, Duration } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';

import { defaultSettings, FanoutSettings, FanoutStack, visibilityTimeoutFor } from '../lib/fanout-stack';

/** A folder with placeholder zips (an empty zip archive): the template, not the code, is tested. */
function zips(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fanout-zips-'));
  for (const bin of ['producer', 'worker']) {
    fs.mkdirSync(path.join(dir, bin));
    fs.writeFileSync(path.join(dir, bin, 'bootstrap.zip'), Buffer.from([0x50, 0x4b, 0x05, 0x06, ...new Array(18).fill(0)]));
  }
  return dir;
}

function synth(overrides: Partial<FanoutSettings> = {}): Template {
  const app = new App();
  const stack = new FanoutStack(app, 'Test', { settings: { ...defaultSettings(zips()), ...overrides } });
  return Template.fromStack(stack);
}

const t = synth();

test('the visibility timeout is six times the worker timeout plus the batching window', () => {
  assert.equal(visibilityTimeoutFor(Duration.seconds(30), Duration.seconds(0)).toSeconds(), 180);
  t.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 180, RedrivePolicy: Match.anyValue() });
  const custom = synth({ workerTimeout: Duration.seconds(60), maxBatchingWindow: Duration.seconds(5), batchSize: 100 });
  custom.hasResourceProperties('AWS::SQS::Queue', { VisibilityTimeout: 365, RedrivePolicy: Match.anyValue() });
});

test('the event source mapping reports batch item failures with the configured batching', () => {
  t.hasResourceProperties('AWS::Lambda::EventSourceMapping', {
    FunctionResponseTypes: ['ReportBatchItemFailures'],
    BatchSize: 10,
    ScalingConfig: { MaximumConcurrency: 20 },
  });
  synth({ batchSize: 500, maxBatchingWindow: Duration.seconds(2), maxConcurrency: 50 }).hasResourceProperties(
    'AWS::Lambda::EventSourceMapping',
    { BatchSize: 500, MaximumBatchingWindowInSeconds: 2, ScalingConfig: { MaximumConcurrency: 50 } },
  );
});

test('the queue redrives to the DLQ after maxReceiveCount', () => {
  t.hasResourceProperties('AWS::SQS::Queue', {
    RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('DeadLetterQueue'), 'Arn'] }, maxReceiveCount: 5 },
  });
});

test('the subscription uses raw message delivery into the queue', () => {
  t.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'sqs', RawMessageDelivery: true });
});

test('topic and queues are encrypted at rest and refuse plain HTTP', () => {
  const topic = Object.values(t.findResources('AWS::SNS::Topic'))[0];
  assert.match(JSON.stringify(topic.Properties.KmsMasterKeyId), /:alias\/aws\/sns"/, 'the AWS-managed SNS key');
  const queues = t.findResources('AWS::SQS::Queue');
  assert.equal(Object.keys(queues).length, 2);
  for (const q of Object.values(queues)) {
    assert.equal(q.Properties.SqsManagedSseEnabled, true, 'queue encrypted');
  }
  t.resourceCountIs('AWS::KMS::Key', 0);
  const tlsOnly = {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      ]),
    },
  };
  t.resourcePropertiesCountIs('AWS::SQS::QueuePolicy', tlsOnly, 2);
  t.hasResourceProperties('AWS::SNS::TopicPolicy', tlsOnly);
});

test('both functions run provided.al2023 on arm64 by default, x86_64 when chosen', () => {
  t.resourcePropertiesCountIs('AWS::Lambda::Function', { Runtime: 'provided.al2023', Handler: 'bootstrap', Architectures: ['arm64'] }, 2);
  synth({ architecture: 'x86_64' }).resourcePropertiesCountIs('AWS::Lambda::Function', { Architectures: ['x86_64'] }, 2);
  t.hasResourceProperties('AWS::Lambda::Function', { MemorySize: 1024, Timeout: 30, LoggingConfig: { LogFormat: 'JSON' } });
  t.hasResourceProperties('AWS::Lambda::Function', { MemorySize: 512, Timeout: 900 });
  t.resourcePropertiesCountIs('AWS::Logs::LogGroup', { RetentionInDays: 30 }, 2);
});

test('the functions get exactly the environment the binaries read', () => {
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: {
        FANOUT_TOPIC_ARN: { Ref: Match.stringLikeRegexp('Topic') },
        FANOUT_DEAD_LETTER_QUEUE_URL: { Ref: Match.stringLikeRegexp('DeadLetterQueue') },
      },
    },
  });
  t.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: {
        FANOUT_QUEUE_URL: { Ref: Match.stringLikeRegexp('^Queue') },
        FANOUT_DEAD_LETTER_QUEUE_URL: { Ref: Match.stringLikeRegexp('DeadLetterQueue') },
      },
    },
  });
});

test('a schedule sends a constant FanoutRequest and a rule forwards application events', () => {
  t.hasResourceProperties('AWS::Events::Rule', {
    ScheduleExpression: 'cron(0 7 * * ? *)',
    State: 'DISABLED',
    Targets: [Match.objectLike({ Input: Match.serializedJson(Match.objectLike({ job_id: 'daily-digest', channel: 'log' })) })],
  });
  t.hasResourceProperties('AWS::Events::Rule', {
    EventPattern: { source: ['com.example.notifications'], 'detail-type': ['FanoutRequested'] },
  });
  synth({ scheduleExpression: '' }).resourceCountIs('AWS::Events::Rule', 1);
  synth({ scheduleEnabled: true }).hasResourceProperties('AWS::Events::Rule', { ScheduleExpression: Match.anyValue(), State: 'ENABLED' });
});

/** Every statement of the policy attached to the function whose logical id starts with `prefix`. */
function statements(prefix: string): Record<string, unknown>[] {
  const policies = t.findResources('AWS::IAM::Policy');
  const found = Object.entries(policies).find(([id]) => id.startsWith(prefix));
  assert.ok(found, `policy of ${prefix}`);
  return found[1].Properties.PolicyDocument.Statement;
}

function actions(st: Record<string, unknown>): string[] {
  const a = st.Action;
  return Array.isArray(a) ? (a as string[]) : [a as string];
}

test('least privilege: the producer publishes to the topic, the worker sends to its queues', () => {
  const producer = statements('ProducerServiceRole');
  const producerActions = producer.flatMap(actions);
  assert.ok(producerActions.includes('sns:Publish'));
  assert.ok(!producerActions.some((a) => a.startsWith('sqs:Receive') || a.startsWith('sqs:Delete')));
  const publish = producer.find((st) => actions(st).includes('sns:Publish'));
  const topicId = Object.keys(t.findResources('AWS::SNS::Topic'))[0];
  assert.deepEqual(publish?.Resource, { Ref: topicId }, 'sns:Publish on this topic only');

  const worker = statements('WorkerServiceRole');
  const workerActions = worker.flatMap(actions);
  assert.ok(!workerActions.includes('sns:Publish'), 'the worker never publishes to the topic');
  assert.ok(workerActions.includes('sqs:SendMessage'));
  assert.ok(workerActions.includes('sqs:ReceiveMessage'), 'the event source needs receive');
  for (const st of [...producer, ...worker]) {
    for (const a of actions(st)) {
      assert.ok(!a.endsWith(':*') && a !== '*', `no wildcard action: ${a}`);
    }
    if (st.Resource === '*') {
      assert.ok(actions(st).every((a) => a.startsWith('xray:')), `only X-Ray uses Resource "*": ${actions(st)}`);
    }
  }
});

test('the producer may invoke itself (continuations) and failed async invocations go to the DLQ', () => {
  const invoke = statements('ProducerContinuesItself');
  assert.equal(invoke.length, 1);
  assert.deepEqual(actions(invoke[0]), ['lambda:InvokeFunction']);
  const producerId = Object.keys(t.findResources('AWS::Lambda::Function')).find((id) => id.startsWith('Producer'));
  assert.deepEqual(invoke[0].Resource, [
    { 'Fn::GetAtt': [producerId, 'Arn'] },
    { 'Fn::Join': ['', [{ 'Fn::GetAtt': [producerId, 'Arn'] }, ':*']] },
  ]);
  t.hasResourceProperties('AWS::Lambda::Function', { Description: Match.stringLikeRegexp('producer'), RecursiveLoop: 'Allow' });
  t.hasResourceProperties('AWS::Lambda::Function', { Description: Match.stringLikeRegexp('worker'), RecursiveLoop: Match.absent() });
  t.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
    FunctionName: { Ref: producerId },
    MaximumRetryAttempts: 2,
    DestinationConfig: { OnFailure: { Destination: { 'Fn::GetAtt': [Match.stringLikeRegexp('DeadLetterQueue'), 'Arn'] } } },
  });
});

test('recipient objects are readable only in the buckets (or prefixes) named', () => {
  assert.equal(Object.keys(t.findResources('AWS::IAM::Policy')).filter((id) => id.startsWith('ProducerReadsRecipients')).length, 0);
  const withBuckets = synth({ recipientBuckets: ['people', 'shared/fanout/lists'] });
  const policies = withBuckets.findResources('AWS::IAM::Policy');
  const reads = Object.entries(policies).find(([id]) => id.startsWith('ProducerReadsRecipients'));
  assert.ok(reads);
  const doc = JSON.stringify(reads[1].Properties.PolicyDocument.Statement);
  assert.ok(doc.includes(':s3:::people/*'), doc);
  assert.ok(doc.includes(':s3:::shared/fanout/lists*'), doc);
  assert.ok(doc.includes('"s3:prefix":["fanout/lists*"]'), doc);
  assert.ok(!doc.includes('s3:PutObject') && !doc.includes('s3:*'), doc);
  assert.throws(() => synth({ recipientBuckets: ['/no-bucket'] }), /does not start with a bucket name/);
});

test('alarms watch the DLQ depth, the oldest message and worker errors', () => {
  t.hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'ApproximateNumberOfMessagesVisible',
    Threshold: 0,
    ComparisonOperator: 'GreaterThanThreshold',
  });
  t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateAgeOfOldestMessage', Threshold: 900 });
  t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Namespace: 'AWS/Lambda', Threshold: 0 });
});

test('outputs name everything the load test needs', () => {
  const outputs = Object.keys(t.findOutputs('*'));
  for (const name of ['TopicArn', 'QueueUrl', 'DeadLetterQueueUrl', 'ProducerFunctionName', 'WorkerFunctionName']) {
    assert.ok(outputs.includes(name), `output ${name}`);
  }
});
