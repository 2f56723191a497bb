// The fanout pipeline as one CDK stack: SNS topic → SQS queue (with DLQ) → worker function,
// the producer function and its triggers, alarms, outputs. Everything the binaries read from
// their environment is wired here; nothing more is deployed.
import * as path from 'node:path';

import { CfnOutput, Duration, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { SqsDestination } from 'aws-cdk-lib/aws-lambda-destinations';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import { SqsSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The settings of a deployment; every one has a default (see `defaultSettings`). */
export interface FanoutSettings {
  /** Folder of `cargo lambda build --output-format zip` (holds `<bin>/bootstrap.zip`). */
  readonly zipsDir: string;
  /** CPU architecture of the zips: `arm64` (default) or `x86_64`. */
  readonly architecture: 'arm64' | 'x86_64';
  readonly producerMemoryMb: number;
  readonly producerTimeout: Duration;
  readonly workerMemoryMb: number;
  readonly workerTimeout: Duration;
  readonly logRetention: logs.RetentionDays;
  /** Event source mapping: messages per invocation (1–10,000; above 10 needs a window). */
  readonly batchSize: number;
  /** Event source mapping: how long to gather a batch (0–300 s). */
  readonly maxBatchingWindow: Duration;
  /** Event source mapping: most concurrent worker invocations (2–1,000). */
  readonly maxConcurrency: number;
  /** Receives before SQS moves a message to the DLQ. */
  readonly maxReceiveCount: number;
  /** Alarm when the oldest message is older than this. */
  readonly oldestMessageAlarmAge: Duration;
  /** EventBridge schedule of the scheduled job, e.g. `cron(0 7 * * ? *)`; empty: none. */
  readonly scheduleExpression: string;
  /** Whether the schedule is enabled (off by default: the default request is an example). */
  readonly scheduleEnabled: boolean;
  /** The `FanoutRequest` the schedule sends (its constant input). */
  readonly scheduledRequest: Record<string, unknown>;
  /** Application events that start a job: their `source` … */
  readonly applicationEventSource: string;
  /** … and `detail-type`; the event's `detail` is the `FanoutRequest`. */
  readonly applicationEventDetailType: string;
  /** Extra environment of both functions (retry policy overrides, concurrency …). */
  readonly environment: Record<string, string>;
  /**
   * Where recipient objects may be read from: bucket names, or `bucket/prefix` to allow
   * only keys under a prefix. Empty: the producer reads no objects.
   */
  readonly recipientBuckets: string[];
}

/** The defaults: arm64, 30 s worker timeout, batch of 10, 20 concurrent workers. */
export function defaultSettings(zipsDir: string): FanoutSettings {
  return {
    zipsDir,
    architecture: 'arm64',
    producerMemoryMb: 512,
    producerTimeout: Duration.minutes(15),
    workerMemoryMb: 1024,
    workerTimeout: Duration.seconds(30),
    logRetention: logs.RetentionDays.ONE_MONTH,
    batchSize: 10,
    maxBatchingWindow: Duration.seconds(0),
    maxConcurrency: 20,
    maxReceiveCount: 5,
    oldestMessageAlarmAge: Duration.minutes(15),
    scheduleExpression: 'cron(0 7 * * ? *)',
    scheduleEnabled: false,
    scheduledRequest: {
      job_id: 'daily-digest',
      channel: 'log',
      payload: { digest: 'daily' },
      recipients: { synthetic: { count: 1000, address: 'digest' } },
    },
    applicationEventSource: 'com.example.notifications',
    applicationEventDetailType: 'FanoutRequested',
    environment: {},
    recipientBuckets: [],
  };
}

/**
 * The visibility timeout the queue needs: at least six times the worker's timeout, plus the
 * batching window (AWS's guidance for SQS event sources), so a message is never handed to a
 * second worker while the first may still be on it.
 */
export function visibilityTimeoutFor(workerTimeout: Duration, batchingWindow: Duration): Duration {
  return Duration.seconds(6 * workerTimeout.toSeconds() + batchingWindow.toSeconds());
}

export interface FanoutStackProps extends StackProps {
  readonly settings: FanoutSettings;
}

export class FanoutStack extends Stack {
  readonly topic: sns.Topic;
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly producer: lambda.Function;
  readonly worker: lambda.Function;

  constructor(scope: Construct, id: string, props: FanoutStackProps) {
    super(scope, id, props);
    const s = props.settings;
    const architecture = s.architecture === 'x86_64' ? lambda.Architecture.X86_64 : lambda.Architecture.ARM_64;

    // Encryption at rest that costs nothing at rest: SQS-managed keys for the queues (SNS can
    // deliver into them) and the AWS-managed SNS key for the topic. A customer-managed KMS
    // key would add a monthly fee and a key policy to keep in step.
    const snsKey = kms.Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns');

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    Validations.of(this.deadLetterQueue).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'This is the dead-letter queue: records and redriven messages end here for an operator.',
    });

    this.queue = new sqs.Queue(this, 'Queue', {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      visibilityTimeout: visibilityTimeoutFor(s.workerTimeout, s.maxBatchingWindow),
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: s.maxReceiveCount },
    });

    this.topic = new sns.Topic(this, 'Topic', { masterKey: snsKey, enforceSSL: true });
    this.topic.addSubscription(new SqsSubscription(this.queue, { rawMessageDelivery: true }));

    const fn = (id: string, description: string, memorySize: number, timeout: Duration, environment: Record<string, string>) =>
      new lambda.Function(this, id, {
        runtime: lambda.Runtime.PROVIDED_AL2023,
        handler: 'bootstrap',
        architecture,
        loggingFormat: lambda.LoggingFormat.JSON,
        tracing: lambda.Tracing.ACTIVE,
        description,
        code: lambda.Code.fromAsset(path.join(s.zipsDir, id.toLowerCase(), 'bootstrap.zip')),
        memorySize,
        timeout,
        logGroup: new logs.LogGroup(this, `${id}Logs`, { retention: s.logRetention, removalPolicy: RemovalPolicy.DESTROY }),
        environment: { ...s.environment, ...environment },
      });
    this.producer = fn('Producer', 'fanout producer: request → batches → SNS PublishBatch', s.producerMemoryMb, s.producerTimeout, {
      FANOUT_TOPIC_ARN: this.topic.topicArn,
      FANOUT_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
    });
    // The producer continues long jobs by invoking itself: a recursive pattern on purpose,
    // which Lambda's loop detection would stop after 16 hops. Its own guard rails instead:
    // every invocation publishes at least one batch or fails, and a job may take at most
    // FANOUT_MAX_INVOCATIONS invocations.
    (this.producer.node.defaultChild as lambda.CfnFunction).recursiveLoop = 'Allow';
    this.worker = fn('Worker', 'fanout worker: SQS batch → concurrent delivery → partial batch response', s.workerMemoryMb, s.workerTimeout, {
      FANOUT_QUEUE_URL: this.queue.queueUrl,
      FANOUT_DEAD_LETTER_QUEUE_URL: this.deadLetterQueue.queueUrl,
    });

    // Least privilege: the producer publishes to this topic; the worker re-enqueues to its
    // own queue; both write dead-letter records. The event source grants the worker the
    // receive/delete/visibility calls on its queue.
    this.topic.grantPublish(this.producer);
    this.deadLetterQueue.grantSendMessages(this.producer);
    this.queue.grantSendMessages(this.worker);
    this.deadLetterQueue.grantSendMessages(this.worker);

    // A job longer than one invocation goes on in an asynchronous invocation of the producer
    // itself (through an alias or version too: hence the qualified ARNs). A separate policy,
    // not the role's default one: the function depends on that, and this refers to the
    // function. An asynchronous invocation that still fails after Lambda's two retries (a
    // trigger's or a continuation's) lands in the dead-letter queue with its request.
    const producerRole = this.producer.role as iam.Role;
    const continues = new iam.Policy(this, 'ProducerContinuesItself', {
      roles: [producerRole],
      statements: [
        new iam.PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: [this.producer.functionArn, `${this.producer.functionArn}:*`],
        }),
      ],
    });
    Validations.of(continues).acknowledge({
      id: `AwsSolutions::AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(this.producer.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
      reason: 'The producer continues a job through the same alias or version it was invoked by.',
    });
    this.producer.configureAsyncInvoke({ retryAttempts: 2, onFailure: new SqsDestination(this.deadLetterQueue) });

    // Recipient objects: read (and list, so a missing key is a 404, not a 403) only where allowed.
    if (s.recipientBuckets.length > 0) {
      const reads = new iam.Policy(this, 'ProducerReadsRecipients', { roles: [producerRole] });
      for (const entry of s.recipientBuckets) {
        const [bucket, ...rest] = entry.split('/');
        const prefix = rest.join('/');
        if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
          throw new Error(`recipientBuckets: ${JSON.stringify(entry)} does not start with a bucket name`);
        }
        const bucketArn = Stack.of(this).formatArn({ service: 's3', region: '', account: '', resource: bucket });
        reads.addStatements(
          new iam.PolicyStatement({ actions: ['s3:GetObject', 's3:GetObjectVersion'], resources: [`${bucketArn}/${prefix}*`] }),
          new iam.PolicyStatement({
            actions: ['s3:ListBucket'],
            resources: [bucketArn],
            ...(prefix ? { conditions: { StringLike: { 's3:prefix': [`${prefix}*`] } } } : {}),
          }),
        );
        Validations.of(reads).acknowledge({
          id: `AwsSolutions::AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::${bucket}/${prefix}*]`,
          reason: 'Recipient objects are named per job; the producer may read any of them in this bucket or prefix.',
        });
      }
    }
    this.worker.addEventSource(
      new SqsEventSource(this.queue, {
        batchSize: s.batchSize,
        maxBatchingWindow: s.maxBatchingWindow.toSeconds() > 0 ? s.maxBatchingWindow : undefined,
        maxConcurrency: s.maxConcurrency,
        reportBatchItemFailures: true,
      }),
    );

    if (s.scheduleExpression) {
      new events.Rule(this, 'Schedule', {
        description: 'fanout: the scheduled job (constant input = FanoutRequest)',
        schedule: events.Schedule.expression(s.scheduleExpression),
        enabled: s.scheduleEnabled,
        targets: [new targets.LambdaFunction(this.producer, { event: events.RuleTargetInput.fromObject(s.scheduledRequest) })],
      });
    }
    new events.Rule(this, 'ApplicationEvents', {
      description: 'fanout: application events whose detail is a FanoutRequest',
      eventPattern: { source: [s.applicationEventSource], detailType: [s.applicationEventDetailType] },
      targets: [new targets.LambdaFunction(this.producer)],
    });

    const alarm = (id: string, description: string, metric: cloudwatch.IMetric, threshold: number, periods: number) =>
      new cloudwatch.Alarm(this, id, {
        alarmDescription: `fanout: ${description}`,
        metric,
        threshold,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        evaluationPeriods: periods,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    const minute = { period: Duration.minutes(1) };
    alarm('DeadLettersAlarm', 'recipients or messages are in the dead-letter queue',
      this.deadLetterQueue.metricApproximateNumberOfMessagesVisible(minute), 0, 1);
    alarm('OldestMessageAlarm', 'the queue is not keeping up',
      this.queue.metricApproximateAgeOfOldestMessage(minute), s.oldestMessageAlarmAge.toSeconds(), 5);
    alarm('WorkerErrorsAlarm', 'the worker function failed (it never fails on purpose)',
      this.worker.metricErrors(minute), 0, 1);

    new CfnOutput(this, 'TopicArn', { value: this.topic.topicArn });
    new CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new CfnOutput(this, 'ProducerFunctionName', { value: this.producer.functionName });
    new CfnOutput(this, 'WorkerFunctionName', { value: this.worker.functionName });

    for (const fn of [this.producer, this.worker]) {
      const role = fn.role as iam.Role;
      const findings: [string, string][] = [
        [
          'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
          'AWSLambdaBasicExecutionRole only lets the function write its own log streams.',
        ],
        ['AwsSolutions-IAM5[Resource::*]', 'X-Ray PutTraceSegments/PutTelemetryRecords accept only Resource "*".'],
      ];
      for (const [id, reason] of findings) {
        Validations.of(role).acknowledge({ id: `AwsSolutions::${id}`, reason });
      }
    }
  }
}
