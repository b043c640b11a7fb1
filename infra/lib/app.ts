// Building the stack from settings, shared by the CDK app (bin/app.ts), the
// committed template (bin/template.ts) and the tests.

import * as cdk from 'aws-cdk-lib';
import { CheckovSkips } from './checkov';
import { readSettings, Settings } from './settings';
import { Otlp2ParquetStack } from './stack';

export const STACK_NAME = 'Otlp2Parquet';

/** The committed CloudFormation template: code from parameters, no CDK bootstrap needed. */
export const TEMPLATE_FILE = 'cloudformation/otlp2parquet.template.json';

/** Context that keeps a synthesised template the same from run to run. */
const STABLE_CONTEXT = {
  'aws:cdk:enable-path-metadata': false,
  'aws:cdk:enable-asset-metadata': false,
};

/** An app holding the stack for `context` (the CLI's -c values and cdk.json). */
export function buildApp(context: Record<string, unknown>, outdir?: string): { app: cdk.App; stack: Otlp2ParquetStack; settings: Settings } {
  const app = new cdk.App({ context: { ...STABLE_CONTEXT, ...context }, analyticsReporting: false, outdir });
  const settings = readSettings((name) => app.node.tryGetContext(name));
  const stack = new Otlp2ParquetStack(app, STACK_NAME, settings, {
    description: 'otlp2parquet: OTLP to Apache Iceberg tables on S3 Tables (API Gateway, Lambda, SQS)',
    analyticsReporting: false,
    synthesizer: settings.code.kind === 'parameters' ? new cdk.BootstraplessSynthesizer() : undefined,
  });
  cdk.Aspects.of(stack).add(new CheckovSkips());
  return { app, stack, settings };
}

/** The template users without CDK launch: the default settings, code from parameters. */
export function committedTemplate(): unknown {
  const { app, stack } = buildApp({ codeSource: 'parameters' });
  return app.synth().getStackByName(stack.stackName).template;
}
