/**
 * What a location holds, for tests: rclone's `fstest` habit (`CheckRemoteItems`, `NewRun`) for lakerun.
 *
 * - {@link treeOf} reads a local folder or an S3 prefix *as stored* (the file system, or plain S3 requests),
 *   not through lakerun's listing code, and returns every file's relative path with the sha256 of its bytes.
 *   Local folders and S3 prefixes give the same tree for the same files, so one expected tree
 *   ({@link digests}) serves both.
 * - {@link s3Location} is a fresh bucket on the test S3 server (tests/support/s3_server.ts) with its settings, a
 *   plain client and lakerun's Storage, removed with everything in it by `await using`.
 *
 * The AWS SDK is loaded only when a tree or a location is on S3.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { join } from "node:path";
import type { S3Client } from "@aws-sdk/client-s3";
import type { S3Storage, S3StorageOptions } from "../../lib/aws/s3/storage.ts";
import type { S3Settings } from "../../lib/aws/settings.ts";
import { isS3Url, isTemporaryName, type Storage } from "../../lib/storage/mod.ts";
import type { S3TestServer } from "./s3_server.ts";

/** Relative path (`/`-separated, sorted) → lower-case hex sha256 of the file's bytes. */
export type Tree = Record<string, string>;

/** Options for {@link treeOf}. */
export interface TreeOptions {
  /**
   * Include lakerun's temporary names (`.lakerun-tmp-…` as any path segment), which listings skip: for tests
   * that assert that nothing was left behind. Unfinished S3 multipart uploads are not files and never appear
   * (see {@link S3TestLocation.unfinishedUploads}).
   */
  temporaries?: boolean;
  /** The routine's `s3` block, for an `s3://` string (credentials come from the environment). */
  s3?: S3Settings;
}

/** The tree value of a local symbolic link (never followed): its target, not a digest. */
export function symlinkEntry(target: string): string {
  return `symlink → ${target}`;
}

/**
 * Every file under a location with the sha256 of its bytes, read as stored: a local folder through the file
 * system (symbolic links as {@link symlinkEntry}, never followed), an S3 prefix with ListObjectsV2 and
 * GetObject (each body checked against its Content-Length; keys ending in `/`, folder markers, are skipped as
 * empty local folders are). A local folder that does not exist is an empty tree; a missing bucket fails.
 *
 * `location` is a local folder, an `s3://bucket/prefix` (with `options.s3`), or a {@link Storage}: its
 * `localFolder`, or for an S3 location its bucket, prefix and client. Any other Storage is read through its
 * own `list` and `read` (which cannot show temporary names: asking for them fails).
 *
 * @example
 * ```ts ignore
 * await storage.write("a.csv", new Blob(["a"]).stream());
 * assert.deepEqual(await treeOf(storage), digests({ "a.csv": "a" }));
 * assert.deepEqual(await treeOf("data/landing", { temporaries: true }), {}, "nothing left behind");
 * ```
 */
export async function treeOf(location: Storage | string, options: TreeOptions = {}): Promise<Tree> {
  let tree: Tree;
  if (typeof location === "string") {
    if (isS3Url(location)) {
      const { openS3Location } = await import("../../lib/aws/s3/storage.ts");
      tree = await s3Tree(openS3Location(location, options.s3), options);
    } else {
      tree = await folderTree(location, options);
    }
  } else if (location.localFolder !== undefined) {
    tree = await folderTree(location.localFolder, options);
  } else if (isS3Storage(location)) {
    tree = await s3Tree(location, options);
  } else {
    tree = await storageTree(location, options);
  }
  return sorted(tree);
}

/**
 * The tree `files` make: each path with the sha256 of its content (a string is hashed as UTF-8).
 *
 * @example
 * ```ts ignore
 * import assert from "node:assert/strict";
 * import { digests } from "./trees.ts";
 *
 * assert.deepEqual(digests({ "b.csv": "", "a.csv": "a" }), {
 *   "a.csv": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb",
 *   "b.csv": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
 * });
 * ```
 */
export function digests(files: Record<string, string | Uint8Array>): Tree {
  return sorted(
    Object.fromEntries(Object.entries(files).map(([path, content]) => [path, sha256Hex(content)])),
  );
}

/** Lower-case hex sha256 of `content` (a string as UTF-8). */
export function sha256Hex(content: string | Uint8Array): string {
  return createHash("sha256").update(content).digest("hex");
}

/** `tree` with its paths in code-unit order, as lakerun's listings sort them. */
function sorted(tree: Tree): Tree {
  return Object.fromEntries(Object.entries(tree).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

async function folderTree(root: string, options: TreeOptions): Promise<Tree> {
  const tree: Tree = {};
  const walk = async (dir: string, prefix: string) => {
    for await (const entry of Deno.readDir(dir)) {
      if (!options.temporaries && isTemporaryName(entry.name)) continue;
      const full = join(dir, entry.name);
      if (entry.isSymlink) tree[prefix + entry.name] = symlinkEntry(await Deno.readLink(full));
      else if (entry.isDirectory) await walk(full, `${prefix}${entry.name}/`);
      else if (entry.isFile) tree[prefix + entry.name] = sha256Hex(await Deno.readFile(full));
    }
  };
  try {
    await walk(root, "");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    if (Object.keys(tree).length > 0) throw error; // something vanished mid-walk: not a missing folder
  }
  return tree;
}

function isS3Storage(storage: Storage): storage is S3Storage {
  return storage.kind === "s3" && "client" in storage && "bucket" in storage && "prefix" in storage;
}

/** GetObjects in flight at once. */
const S3_READS = 16;

async function s3Tree(storage: S3Storage, options: TreeOptions): Promise<Tree> {
  const { GetObjectCommand, ListObjectsV2Command } = await import("@aws-sdk/client-s3");
  const { bucket, client } = storage;
  const prefix = storage.prefix ? `${storage.prefix}/` : "";
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix || undefined, ContinuationToken: token }),
    );
    for (const { Key: key } of page.Contents ?? []) {
      if (key === undefined || key.endsWith("/")) continue;
      if (!options.temporaries && key.slice(prefix.length).split("/").some(isTemporaryName)) continue;
      keys.push(key);
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const tree: Tree = {};
  let next = 0;
  await Promise.all(Array.from({ length: S3_READS }, async () => {
    while (next < keys.length) {
      const key = keys[next++];
      const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const bytes = await object.Body!.transformToByteArray();
      if (bytes.byteLength !== object.ContentLength) {
        throw new Error(
          `s3://${bucket}/${key}: ${bytes.byteLength} bytes read, ${object.ContentLength} announced`,
        );
      }
      tree[key.slice(prefix.length)] = sha256Hex(bytes);
    }
  }));
  return tree;
}

async function storageTree(storage: Storage, options: TreeOptions): Promise<Tree> {
  if (options.temporaries) {
    throw new Error(`treeOf(${storage.url}): temporary names are not visible through this Storage's list`);
  }
  const tree: Tree = {};
  for await (const file of storage.list()) {
    tree[file.path] = file.kind === "symlink"
      ? "symlink"
      : sha256Hex(new Uint8Array(await new Response(await storage.read(file.path)).arrayBuffer()));
  }
  return tree;
}

// ------------------------------------------------------------------------------------------------ S3 locations

/** A fresh bucket on the test S3 server, from {@link s3Location}. */
export interface S3TestLocation extends AsyncDisposable {
  /** The server (the shared one named by `LAKERUN_TEST_S3_ENV`, or this process's own). */
  readonly server: S3TestServer;
  /** A bucket made for this location alone, removed with everything in it on dispose. */
  readonly bucket: string;
  /** The key prefix inside the bucket: the name given to {@link s3Location}. */
  readonly prefix: string;
  /** `s3://bucket/prefix` */
  readonly url: string;
  /** The routine's `s3` block for the server (endpoint and region; credentials are in the environment). */
  readonly settings: S3Settings;
  /** A plain SDK client (path-style, checksums only where required), for what a Storage does not do. */
  readonly client: S3Client;
  /** The location as lakerun's Storage, with default options. */
  readonly storage: S3Storage;
  /** `s3://bucket/prefix/path` (the location itself without `path`) as lakerun's Storage, with `options`. */
  open(path?: string, options?: S3StorageOptions): S3Storage;
  /** The object key of `path` in this location (`prefix/path`), for the plain client. */
  key(path: string): string;
  /** The keys of the bucket's unfinished multipart uploads, sorted. */
  unfinishedUploads(): Promise<string[]>;
}

let server: Promise<S3TestServer> | undefined;

/**
 * The test S3 server, started (or found through `LAKERUN_TEST_S3_ENV`) once per process, with its credentials
 * in `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` where lakerun's clients look for them. A server of this
 * process's own stops when the process ends (the script watches it), or earlier with `stopS3ServerAfterTests`.
 */
export function s3TestServer(): Promise<S3TestServer> {
  server ??= import("./s3_server.ts").then((module) => module.startS3ServerForLakerun());
  server.catch(() => server = undefined); // a failed start fails its test; the next one tries again
  return server;
}

/**
 * Stops the server {@link s3TestServer} started, if it started one (the shared server keeps running), and
 * closes lakerun's shared S3 clients. The next {@link s3TestServer} starts a new one.
 */
export async function stopS3TestServer(): Promise<void> {
  const started = server;
  server = undefined;
  const { closeS3Clients } = await import("../../lib/aws/s3/client.ts");
  closeS3Clients();
  await (await started?.catch(() => undefined))?.stop();
}

/**
 * A fresh bucket named after `name` with `s3://bucket/name` in it, on the test S3 server. `await using`
 * removes the bucket, its objects and its unfinished uploads (a failure to do so is a warning, not a failed
 * test) and destroys the plain client.
 *
 * @example
 * ```ts ignore
 * await using s3 = await s3Location("landing");
 * await s3.storage.write("a.csv", new Blob(["a"]).stream());
 * assert.deepEqual(await treeOf(s3.storage), digests({ "a.csv": "a" }));
 * assert.deepEqual(await s3.unfinishedUploads(), []);
 * ```
 */
export async function s3Location(name: string): Promise<S3TestLocation> {
  const test = await s3TestServer();
  const { createS3Client, createTestBucket } = await import("./s3_server.ts");
  const { openS3Location } = await import("../../lib/aws/s3/storage.ts");
  const { ListMultipartUploadsCommand } = await import("@aws-sdk/client-s3");
  const bucket = await createTestBucket(test, name);
  const client = createS3Client(test);
  const settings: S3Settings = { endpoint: test.endpoint, region: test.region };
  const url = `s3://${bucket}/${name}`;
  const open = (path?: string, options?: S3StorageOptions) =>
    openS3Location(path ? `${url}/${path}` : url, settings, options);
  return {
    server: test,
    bucket,
    prefix: name,
    url,
    settings,
    client,
    storage: open(),
    open,
    key: (path) => `${name}/${path}`,
    async unfinishedUploads() {
      const keys: string[] = [];
      let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
      while (true) {
        const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, ...markers }));
        for (const upload of page.Uploads ?? []) keys.push(upload.Key!);
        if (!page.IsTruncated) break;
        markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
      }
      return keys.sort();
    },
    async [Symbol.asyncDispose]() {
      try {
        await removeBucket(client, bucket);
      } catch (error) {
        console.warn(`s3Location: bucket ${bucket} was not removed: ${(error as Error).message}`);
      } finally {
        client.destroy();
      }
    },
  };
}

/** Deletes every object and unfinished upload of `bucket`, then the bucket. */
async function removeBucket(client: S3Client, bucket: string): Promise<void> {
  const {
    AbortMultipartUploadCommand,
    DeleteBucketCommand,
    DeleteObjectsCommand,
    ListMultipartUploadsCommand,
    ListObjectsV2Command,
  } = await import("@aws-sdk/client-s3");
  while (true) {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket }));
    const objects = (page.Contents ?? []).map(({ Key }) => ({ Key }));
    if (objects.length === 0) break;
    const deleted = await client.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects, Quiet: true } }),
    );
    const failed = deleted.Errors?.[0];
    if (failed) throw new Error(`cannot delete ${failed.Key}: ${failed.Code} ${failed.Message}`);
  }
  while (true) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    if (!page.Uploads?.length) break;
    for (const { Key, UploadId } of page.Uploads) {
      await client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key, UploadId }));
    }
  }
  await client.send(new DeleteBucketCommand({ Bucket: bucket }));
}
