// HAR 1.2 validation against the published JSON schemas of the format (npm `har-schema`,
// the schemas of the W3C HAR 1.2 draft), with ajv. Used by the browser tests.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const Ajv = require('ajv');
const addFormats = require('ajv-formats');
const schemas = require('har-schema');
const draft06 = require('ajv/dist/refs/json-schema-draft-06.json');

let validate;

/** Errors of `har` against the HAR 1.2 schema (an empty list when it is valid). */
export function harErrors(har) {
  if (!validate) {
    const ajv = new Ajv({ allErrors: true, strict: false });
    ajv.addMetaSchema(draft06);
    addFormats(ajv);
    for (const [name, s] of Object.entries(schemas)) {
      if (name !== 'har') ajv.addSchema(s);
    }
    validate = ajv.compile(schemas.har);
  }
  return validate(har) ? [] : validate.errors.map((e) => `${e.instancePath || '/'} ${e.message}`);
}
