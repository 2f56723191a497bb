// The CDK app. Settings come from context (`cdk synth -c key=value` or cdk.json):
//   zips                 folder of the cargo lambda zips (default ../target/lambda)
//   architecture         arm64 | x86_64 (default arm64)
//   stackName            default Fanout
//   workerTimeoutSeconds, workerMemoryMb, producerMemoryMb, batchSize,
//   maxBatchingWindowSeconds, maxConcurrency, maxReceiveCount, scheduleExpression
import * as path from 'node:path';

import { App, Duration, Validations } from 'aws-cdk-lib';
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
  batchSize: num('batchSize', base.batchSize),
  maxBatchingWindow: Duration.seconds(num('maxBatchingWindowSeconds', base.maxBatchingWindow.toSeconds())),
  maxConcurrency: num('maxConcurrency', base.maxConcurrency),
  maxReceiveCount: num('maxReceiveCount', base.maxReceiveCount),
  scheduleExpression: ctx('scheduleExpression') ?? base.scheduleExpression,
};

new FanoutStack(app, ctx('stackName') ?? 'Fanout', { settings });
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
