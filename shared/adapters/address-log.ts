/**
 * Optional per-address log files, as the old system kept them: one pino
 * JSON-lines file per address (`<dir>/<address>.log`), rotated when it would
 * pass `maxBytes` to `<address>_<YYYYMMDD_HHMMSS>.log` and gzipped in the
 * background to `….log.gz`. Enabled by `log.address_log_dir`.
 *
 * This is a convenience for operators who grep files; the audit_event table
 * (`payment history`) remains the record. So a failure here (disk full, bad
 * permissions) is reported through `onError` and never thrown into the
 * caller's money path.
 *
 * Writes are synchronous appends (one small line per event), so the size
 * check is exact and nothing is lost on a crash but the line being written.
 * Several processes must not share one directory: rotation renames the file
 * under the other process. Give each process its own directory.
 *
 * Failure modes: a crash between rename and gzip leaves an uncompressed
 * `<address>_<stamp>.log`; it is complete and readable, just not compressed.
 *
 * @example
 * const alog = createAddressLog({ dir: config.log.address_log_dir, maxBytes: config.log.address_log_max_bytes });
 * alog.write(address, "WithdrawReq", { queue_id, to, amount, symbol });
 * await alog.close();
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync, createReadStream, createWriteStream } from "node:fs";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import pino from "pino";
import { REDACT_PATHS } from "../logger.ts";

export interface AddressLog {
  /** Append one event line for `address` (a 0x address; anything else is refused via onError). */
  write(address: string, event: string, fields?: Record<string, unknown>): void;
  /** Close every file and wait for pending compressions. */
  close(): Promise<void>;
}

export interface AddressLogOptions {
  /** folder for the files; when undefined the log is a no-op */
  dir: string | undefined;
  /** rotate before a file would pass this size */
  maxBytes: number;
  /** files kept open at once (least recently used are closed), default 128 */
  maxOpen?: number;
  onError?: (err: unknown) => void;
  now?: () => Date;
}

const ADDRESS = /^0x[0-9a-f]{40}$/;

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15);

/** A file sink that knows its size and rotates itself. */
class RotatingFile {
  private fd: number;
  private size: number;
  constructor(
    private readonly file: string,
    private readonly opts: { maxBytes: number; now: () => Date; compress: (rotated: string) => void },
  ) {
    this.fd = openSync(file, "a");
    this.size = fstatSync(this.fd).size;
  }

  write(chunk: string): void {
    const bytes = Buffer.from(chunk, "utf8");
    if (this.size > 0 && this.size + bytes.length > this.opts.maxBytes) this.rotate();
    writeSync(this.fd, bytes);
    this.size += bytes.length;
  }

  private rotate(): void {
    closeSync(this.fd);
    const base = this.file.replace(/\.log$/, `_${stamp(this.opts.now())}`);
    let rotated = `${base}.log`;
    for (let n = 1; existsSync(rotated) || existsSync(`${rotated}.gz`); n++) rotated = `${base}_${n}.log`;
    renameSync(this.file, rotated);
    this.fd = openSync(this.file, "a");
    this.size = 0;
    this.opts.compress(rotated);
  }

  close(): void {
    closeSync(this.fd);
  }
}

export function createAddressLog(opts: AddressLogOptions): AddressLog {
  const onError = opts.onError ?? (() => undefined);
  if (!opts.dir) return { write: () => undefined, close: async () => undefined };
  const dir = opts.dir;
  const maxOpen = opts.maxOpen ?? 128;
  const now = opts.now ?? (() => new Date());
  const open = new Map<string, { sink: RotatingFile; logger: pino.Logger }>();
  const compressions = new Set<Promise<void>>();
  let dirReady = false;

  function compress(rotated: string) {
    const p = pipeline(createReadStream(rotated), createGzip(), createWriteStream(`${rotated}.gz`))
      .then(() => unlinkSync(rotated))
      .catch(onError)
      .finally(() => compressions.delete(p));
    compressions.add(p);
  }

  function entry(address: string) {
    const hit = open.get(address);
    if (hit) {
      open.delete(address); // re-insert: Map order is our LRU order
      open.set(address, hit);
      return hit;
    }
    if (!dirReady) {
      mkdirSync(dir, { recursive: true });
      dirReady = true;
    }
    if (open.size >= maxOpen) {
      const [oldest, e] = open.entries().next().value!;
      open.delete(oldest);
      e.sink.close();
    }
    const sink = new RotatingFile(path.join(dir, `${address}.log`), { maxBytes: opts.maxBytes, now, compress });
    const logger = pino(
      { base: { address }, timestamp: () => `,"time":"${now().toISOString()}"`, messageKey: "event", redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
      sink,
    );
    const e = { sink, logger };
    open.set(address, e);
    return e;
  }

  return {
    write(address, event, fields = {}) {
      const a = address.toLowerCase();
      if (!ADDRESS.test(a)) {
        onError(new Error(`address log: not an address: ${JSON.stringify(address).slice(0, 60)}`));
        return;
      }
      try {
        entry(a).logger.info(fields, event);
      } catch (e) {
        onError(e);
      }
    },
    async close() {
      for (const e of open.values()) e.sink.close();
      open.clear();
      while (compressions.size > 0) await Promise.all([...compressions]);
    },
  };
}
