#!/usr/bin/env node
// `cdk synth` / `cdk deploy` entry point: the settings come from cdk.json's
// context and the command line (`-c auth=token`, `-c alarmEmail=ops@example.com`).


import { buildApp } from '../lib/app';
import { SettingsError } from '../lib/settings';

// The CLI passes its context through CDK_CONTEXT_JSON; an App reads it itself,
// so an empty object here means "as given".
try {
  buildApp({}).app.synth();
} catch (err) {
  if (err instanceof SettingsError) {
    console.error(`otlp2parquet: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

