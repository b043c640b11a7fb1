// The checkov checks this stack does not pass, each with the reason why, as
// checkov reads them from a resource's `Metadata.checkov.skip`. Applied by
// resource type (an Aspect), so each reason is written once; any check not
// named here must pass (test/lint: `checkov` on the synthesised templates).

import { CfnResource, IAspect } from 'aws-cdk-lib';
import { IConstruct } from 'constructs';

interface Skip {
  id: string;
  comment: string;
}

const FUNCTION_SKIPS: Skip[] = [
  {
    id: 'CKV_AWS_116',
    comment: 'A function DLQ catches failed asynchronous invocations only. These functions are invoked synchronously (API Gateway) or by SQS event source mappings, whose queues have dead-letter queues; the committer\'s scheduled invocation carries no data (the next one does the same work).',
  },
  {
    id: 'CKV_AWS_117',
    comment: 'The functions call only AWS APIs (S3, SQS, S3 Tables, Secrets Manager) and reach no private resource: a VPC would add NAT gateways or endpoints and cold-start time for no change in who can reach them.',
  },
  {
    id: 'CKV_AWS_115',
    comment: 'Ingest is bounded by the API\'s throttling and the compactor by its SQS event source; reserving concurrency would take it from the account for nothing. The committer has reserved concurrency 1.',
  },
  {
    id: 'CKV_AWS_173',
    comment: 'The variables hold no secret (bucket names, queue URLs, a secret\'s ARN); Lambda encrypts them at rest with its AWS-managed key.',
  },
];

export const SKIPS: Record<string, Skip[]> = {
  'AWS::Lambda::Function': FUNCTION_SKIPS,
  'AWS::Logs::LogGroup': [{
    id: 'CKV_AWS_158',
    comment: 'CloudWatch Logs encrypts every log group at rest; a customer-managed key would add cost and a key policy without changing who can read the logs (IAM decides).',
  }],
  'AWS::S3::Bucket': [
    {
      id: 'CKV_AWS_18',
      comment: 'Only the pipeline\'s own roles write here; server access logs would need a second bucket and add an object per request. Use CloudTrail data events for an audit trail.',
    },
    {
      id: 'CKV_AWS_21',
      comment: 'The pipeline deletes records by design (claims, staged commits, compacted raw files) and the lifecycle rules expire the rest; versions would keep every deleted object and defeat both.',
    },
  ],
  'AWS::SQS::Queue': [{
    id: 'CKV_AWS_27',
    comment: 'Encrypted at rest with SQS-managed keys (SqsManagedSseEnabled: true); this check only recognises KMS keys.',
  }],
  'AWS::SecretsManager::Secret': [{
    id: 'CKV_AWS_149',
    comment: 'Encrypted with Secrets Manager\'s AWS-managed key; only the authorizer\'s role may read it (IAM decides), and a customer-managed key would add cost without changing that.',
  }],
  'AWS::SNS::Topic': [{
    id: 'CKV_AWS_26',
    comment: 'Alarm notifications hold no telemetry. CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed SNS key, and a customer-managed key costs more than the notifications are worth.',
  }],
};

/** Adds the skips of each resource's type to its metadata. */
export class CheckovSkips implements IAspect {
  visit(node: IConstruct): void {
    if (node instanceof CfnResource) {
      const skips = SKIPS[node.cfnResourceType];
      if (skips) {
        node.addMetadata('checkov', { skip: skips });
      }
    }
  }
}
