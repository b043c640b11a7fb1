#!/usr/bin/env node
// Writes the committed CloudFormation template (cloudformation/otlp2parquet.template.json):
// `npm run template`. test/template.test.ts fails when it is out of date.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { committedTemplate, TEMPLATE_FILE } from '../lib/app';

const file = path.join(__dirname, '..', '..', TEMPLATE_FILE);
fs.writeFileSync(file, JSON.stringify(committedTemplate(), null, 2) + '\n');
console.log(`wrote ${path.relative(process.cwd(), file)}`);
