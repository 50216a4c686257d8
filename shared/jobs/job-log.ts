/**
 * Lines on a payment's jobs' Logs tab in Bull Board (SPEC §7): what
 * happened to it, step by step (signed with nonce N, broadcast, mined in
 * block B, confirmations x/y, final). A batch signs and broadcasts many
 * transfers in one job's run, so lines go to each transfer's own job by its
 * deterministic id, not only to the job that ran.
 *
 * For the operator only, so best effort: the step is already committed in
 * MySQL when its line is written, and a Redis hiccup here must neither fail
 * nor repeat it. A job that is gone (trimmed) simply gets no line.
 */
import { Job } from "bullmq";
import type { Logger } from "../logger.ts";
import { describeError } from "../domain/errors.ts";
import { JOB_TYPES, jobIdFor, type Queues } from "./registry.ts";

/** lines kept per job (the oldest are dropped): a transfer has about ten steps, a stuck one a few more */
const KEEP_LOGS = 50;

type LoggedJob = "send-transfer" | "confirm-transfer" | "confirm-deposit";

export interface JobLine {
  /** the transfer's (or deposit's) row id */
  id: bigint | string;
  line: string;
}

export async function logToJobs(queues: Queues, type: LoggedJob, lines: JobLine[], log?: Logger): Promise<void> {
  if (lines.length === 0) return;
  const queue = queues[JOB_TYPES[type].queue];
  const results = await Promise.allSettled(
    lines.map((l) => {
      const id = String(l.id);
      const jobId = type === "confirm-deposit" ? jobIdFor(type, { depositId: id }) : jobIdFor(type, { transferId: id });
      return Job.addJobLog(queue, jobId!, stamped(l.line), KEEP_LOGS);
    }),
  );
  const failed = results.filter((r) => r.status === "rejected");
  // A missing job answers with an error too; that is expected (trimmed jobs), so debug only.
  if (failed.length > 0) log?.debug({ type, failed: failed.length, err: describeError((failed[0] as PromiseRejectedResult).reason) }, "job log lines not written");
}

/** One line on the running job's own Logs tab (best effort, like logToJobs). */
export async function logToJob(job: Job, line: string): Promise<void> {
  await job.log(stamped(line)).catch(() => undefined);
}

/** Bull Board shows log lines without a time: each line carries its own. */
const stamped = (line: string) => `${new Date().toISOString()} ${line}`;
