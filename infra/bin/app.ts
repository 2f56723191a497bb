// The CDK app. Settings come from context (`cdk synth -c key=value` or cdk.json):
//   zips                 folder of the cargo lambda zips (default ../target/lambda)
//   architecture         arm64 | x86_64 (default arm64)
//   stackName            default Fanout
//   workerTimeoutSeconds, workerMemoryMb, producerMemoryMb, logRetentionDays, batchSize,
//   maxBatchingWindowSeconds, maxConcurrency, maxReceiveCount, scheduleExpression,
//   scheduleEnabled (true|false), scheduledRequest (JSON FanoutRequest)
//   environment          JSON object of extra function environment (e.g. AWS_ENDPOINT_URL)
//   recipientBuckets     comma-separated buckets (or bucket/prefix) the producer may read
//                        recipient objects from
//   synthesizer          "emulator": no bootstrap stack; assets in bucket fanout-assets-<account>
import * as path from 'node:path';

import { App, DefaultStackSynthesizer, Duration, Validations } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';

import { defaultSettings, FanoutSettings, FanoutStack } from '../lib/fanout-stack';

const app = new App();
const ctx = (key: string): string | undefined => app.node.tryGetContext(key);
const num = (key: string, fallback: number): number => {
  const v = ctx(key);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`context ${key}: ${JSON.stringify(v)} is not a number`);
  return n;
};

const base = defaultSettings(path.resolve(__dirname, '..', ctx('zips') ?? '../target/lambda'));
const architecture = ctx('architecture') ?? base.architecture;
if (architecture !== 'arm64' && architecture !== 'x86_64') {
  throw new Error(`context architecture: ${JSON.stringify(architecture)} is not arm64 or x86_64`);
}
const settings: FanoutSettings = {
  ...base,
  architecture,
  workerTimeout: Duration.seconds(num('workerTimeoutSeconds', base.workerTimeout.toSeconds())),
  workerMemoryMb: num('workerMemoryMb', base.workerMemoryMb),
  producerMemoryMb: num('producerMemoryMb', base.producerMemoryMb),
  logRetention: logRetention(num('logRetentionDays', base.logRetention)),
  batchSize: num('batchSize', base.batchSize),
  maxBatchingWindow: Duration.seconds(num('maxBatchingWindowSeconds', base.maxBatchingWindow.toSeconds())),
  maxConcurrency: num('maxConcurrency', base.maxConcurrency),
  maxReceiveCount: num('maxReceiveCount', base.maxReceiveCount),
  scheduleExpression: ctx('scheduleExpression') ?? base.scheduleExpression,
  scheduleEnabled: String(ctx('scheduleEnabled') ?? base.scheduleEnabled) === 'true',
  scheduledRequest: ctx('scheduledRequest') ? JSON.parse(String(ctx('scheduledRequest'))) : base.scheduledRequest,
  environment: parseEnvironment(ctx('environment')),
  recipientBuckets: (ctx('recipientBuckets') ?? '').split(',').map((b) => b.trim()).filter((b) => b.length > 0),
};

function logRetention(days: number): logs.RetentionDays {
  const allowed = Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number');
  if (!allowed.includes(days)) throw new Error(`context logRetentionDays: ${days} is not one of ${allowed.join(', ')}`);
  return days as logs.RetentionDays;
}

function parseEnvironment(raw: string | undefined): Record<string, string> {
  if (raw === undefined) return {};
  const value: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  if (typeof value !== 'object' || value === null || Object.values(value).some((v) => typeof v !== 'string')) {
    throw new Error('context environment: must be a JSON object of strings');
  }
  return value as Record<string, string>;
}

// An emulator has no CDK bootstrap stack: assets go to a plain bucket the deploy script
// creates, and the template carries no bootstrap-version rule.
const synthesizer =
  ctx('synthesizer') === 'emulator'
    ? new DefaultStackSynthesizer({
        generateBootstrapVersionRule: false,
        fileAssetsBucketName: 'fanout-assets-${AWS::AccountId}',
        bucketPrefix: '',
      })
    : undefined;

new FanoutStack(app, ctx('stackName') ?? 'Fanout', { settings, synthesizer });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
