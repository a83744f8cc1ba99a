/**
 * DownloaderExecutor: fetches a URL as the notebook's `requests.get(**requests_arguments)` did, and lands it
 * in `landing_directory`, either as a file or, with `"unzip": "unzip"`, as the archive's extracted files.
 * Nothing appears in the landing folder until the download is complete and verified.
 *
 * This module is what lakerun reads to check a routine and compute a step's permissions; the task itself
 * (download.ts, with the HTTP and zip code) is loaded only in the step's Worker, when it runs.
 *
 * @module
 */
import type { TaskContext } from "../../sdk/executor.ts";
import { defineExecutor, ParamError } from "../../sdk/executor.ts";
import { netPermissionFor } from "../../lib/http/request.ts";
import { checkLocation, locationScope, mergeScopes } from "../../lib/storage/locations.ts";
import { parseS3Url, s3RegionOf } from "../../lib/aws/s3/scope.ts";
import { allow, s3Arns, s3ListStatement, s3ObjectArn, s3Statements } from "../../lib/aws/iam.ts";
import { isS3Url } from "../../lib/storage/mod.ts";
import {
  extracts,
  fileUrlPath,
  landingFolder,
  type Params,
  paramsSchema,
  withDefaultPort,
} from "./params.ts";

export default defineExecutor({
  name: "DownloaderExecutor",
  description:
    "Downloads a URL (retrying, resuming, verifying) into a landing folder, extracting zip archives on the way.",
  params: paramsSchema,
  permissions(params, context) {
    const url = params.requests_arguments.url;
    let host: string | undefined;
    try {
      host = netPermissionFor(url);
    } catch (error) {
      throw new ParamError(["requests_arguments", "url"], (error as Error).message);
    }
    const source = host === undefined
      ? { read: [fileUrlPath(url)] }
      : { net: [host, ...params.extra_hosts.map(withDefaultPort(url))] };
    checkLocation(params.landing_directory); // before its folder is taken from it
    const landing = landingFolder(params, context.resolve);
    // extracting into a local folder: its file system's free space bounds what an archive may write
    const room = extracts(params) && !isS3Url(landing) ? { sys: ["statfs"] } : {};
    return mergeScopes(source, locationScope(landing, "write", context), room);
  },
  iam(params, context) {
    const landing = params.landing_directory;
    if (!isS3Url(landing)) return [];
    const options = { region: s3RegionOf(context.s3) };
    const folder = s3Statements(landing, "write", options);
    if (
      extracts(params) || landing.endsWith("/") || parseS3Url(landing).prefix === ""
    ) {
      return folder;
    }
    // a prefix that holds objects receives the URL's file name (`folder`); otherwise landing_directory is the
    // key written, through its parent folder, whose unfinished uploads are aborted first
    const parent = landing.slice(0, landing.lastIndexOf("/"));
    const arns = s3Arns(parent, options);
    return [
      ...folder,
      s3ListStatement(parent, options),
      allow(["s3:ListBucketMultipartUploads"], [arns.bucket]),
      allow(["s3:AbortMultipartUpload"], [arns.objects]),
      allow(["s3:AbortMultipartUpload", "s3:DeleteObject", "s3:GetObject", "s3:PutObject"], [
        s3ObjectArn(landing, options),
      ]),
    ];
  },
  tasks: {
    download: {
      description: "Downloads requests_arguments.url into landing_directory (extracting it with unzip).",
      outputs: {
        files: "Files landed: 1, or the archive's files extracted.",
        bytes: "Their bytes.",
        path: "The landing folder: an absolute local path or s3://bucket/prefix.",
        file: "Without unzip: the file written (path/name).",
      },
      run: async (context: TaskContext<Params>) => (await import("./download.ts")).downloadToLanding(context),
    },
  },
});
