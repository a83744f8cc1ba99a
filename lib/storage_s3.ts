/**
 * S3 prefixes as {@link Storage}. (Built in the S3 issue.)
 *
 * @module
 */
import type { S3Settings } from "../orchestrator/contract.ts";
import type { Storage } from "./storage.ts";

/** Opens `s3://bucket/prefix`. */
export function openS3Location(url: string, _settings?: S3Settings): Storage {
  throw new Error(`S3 locations are not supported yet: ${url}`);
}
