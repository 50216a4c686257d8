/**
 * SIGKILL chaos. Every role runs as its own `payment start --role R`
 * process; while 30 payouts (withdraws and pay batches) and 20 deposits to
 * watched addresses flow through, a random role is SIGKILLed at a random
 * moment, several times, and restarted each time. A seeded RNG decides
 * what dies when (the seed is printed; rerun one with CHAOS_SEED=<n>).
 *
 * Afterwards: every accepted request reached its final notification, every
 * recipient holds exactly its amount (no payout sent twice), no deposit or
 * payout has two pending or two final notifications (by notification_id
 * and by subject), every notification is signed.
 *
 * Recovery relies on: RabbitMQ redelivering the dead bridge's unacked
 * requests, BullMQ's stalled-job check (short lock timings in the test
 * config) re-running a dead worker's jobs, the chain-watch lease expiring
 * and the scan resuming from the cursor, the outbox lease expiring.
 */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startFaultStack, randomAddress, sleep, ROLES, type FaultStack } from "./lib/fault-stack.ts";

const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const KILLS = Number(process.env.CHAOS_KILLS ?? 8);

/** mulberry32: a small seeded PRNG, so a failing schedule can be replayed. */
function rng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let s: FaultStack;

before(async () => {
  s = await startFaultStack({ confirmHeight: 3 });
});

after(async () => {
  await s?.stop();
});

test(`SIGKILL of random roles under load (seed ${SEED}): every request final, nothing paid or reported twice`, { timeout: 600_000 }, async (t) => {
  console.log(`# chaos seed ${SEED} (rerun with CHAOS_SEED=${SEED})`);
  t.diagnostic(`seed ${SEED}, ${KILLS} kills; logs in ${s.procs.logDir}`);
  const random = rng(SEED);
  const between = (lo: number, hi: number) => lo + random() * (hi - lo);
  const started = Date.now();
  await s.startRoles();

  const watched = Array.from({ length: 20 }, () => randomAddress());
  for (const [i, a] of watched.entries()) await s.topup(a, `chaos-topup-${i}`);
  s.startMining(250);

  // 30 payouts (10 withdraws, two batches of 10) and 20 deposits, shuffled,
  // published in KILLS bursts; each burst is followed, a random few hundred
  // ms later, by the SIGKILL of a role, so kills land while work is in flight
  const actions: (() => Promise<unknown>)[] = [];
  for (let i = 0; i < 10; i++) actions.push(() => s.withdraw(`chaos-w-${i}`, randomAddress(), `${i + 1}.${String(2 * i + 1).padStart(6, "0")}`));
  for (const b of [0, 1]) {
    actions.push(() => s.pay(`chaos-p-${b}`, Array.from({ length: 10 }, (_, i) => ({ orderId: `o${i}`, to: randomAddress(), amount: `${b * 10 + i}.${2 * i + 1}` }))));
  }
  for (const [i, a] of watched.entries()) actions.push(() => s.deposit(a, `${i + 1}.25`));
  for (let i = actions.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [actions[i], actions[j]] = [actions[j]!, actions[i]!];
  }
  // every role dies at least once (twice with 8 kills), in a random order
  const victims = Array.from({ length: KILLS }, (_, i) => ROLES[i % ROLES.length]!);
  for (let i = victims.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [victims[i], victims[j]] = [victims[j]!, victims[i]!];
  }
  // the whole schedule is drawn up front, so the seed alone decides it
  const rounds = victims.map((role, k) => ({
    role,
    burst: actions.slice(Math.floor((k * actions.length) / KILLS), Math.floor(((k + 1) * actions.length) / KILLS)),
    killAfter: between(0, 800),
    down: between(0, 2_000),
    pause: between(500, 2_500),
    arm: random(),
  }));

  const killed: string[] = [];
  const inFlight: Promise<unknown>[] = [];
  // A restarted transfer-sender is sometimes armed with a failpoint, so some
  // deaths land exactly inside the money-out critical sections (see
  // shared/runtime/failpoints.ts), not only wherever the clock happens to be.
  const FAILPOINTS = ["before-broadcast", "after-broadcast", "after-sent-commit"];
  const armed = new Map<string, string>();
  const restart = async (role: string, failpoint?: string) => {
    const p = s.procs.start(role, [role], { failpoints: failpoint });
    if (failpoint) armed.set(p.name, failpoint);
    await p.ready();
  };
  for (const r of rounds) {
    // not awaited: the burst is still being handled (or waits in RabbitMQ) when the kill lands
    inFlight.push(...r.burst.map((act) => act()));
    await sleep(r.killAfter);
    const victim = s.alive(r.role)[0];
    if (victim) {
      const exit = await victim.kill("SIGKILL");
      assert.equal(exit.signal, "SIGKILL");
      killed.push(`${((Date.now() - started) / 1000).toFixed(1)}s ${victim.name}${armed.has(victim.name) ? ` (armed ${armed.get(victim.name)}, not reached)` : ""}`);
    } else {
      // it already died at its failpoint
      const dead = s.procs.processes().filter((p) => p.roles.includes(r.role)).at(-1)!;
      assert.match(dead.output(), /failpoint .*: killing process/, `${dead.name} died without reaching a failpoint`);
      killed.push(`${dead.name} died at failpoint ${armed.get(dead.name)}`);
    }
    await sleep(r.down);
    await restart(r.role, r.role === "transfer-sender" && r.arm < 0.5 ? FAILPOINTS[Math.floor(r.arm * 6)] : undefined);
    await sleep(r.pause);
  }
  // no armed sender may be left to die on the last payouts with nobody to restart it,
  // and one that already died at its failpoint after the last round is restarted
  for (const p of s.alive("transfer-sender").filter((x) => armed.has(x.name))) await p.kill("SIGKILL");
  for (const role of ROLES) if (s.alive(role).length === 0) await restart(role);
  for (const p of s.procs.processes().filter((x) => armed.has(x.name) && x.output().includes("failpoint"))) {
    if (!killed.some((k) => k.startsWith(p.name))) killed.push(`${p.name} died at failpoint ${armed.get(p.name)}`);
  }
  await Promise.all(inFlight);
  t.diagnostic(`killed: ${killed.join(", ")}`);
  t.diagnostic(`load and kills done after ${Date.now() - started} ms`);

  await s.settle(300_000);
  t.diagnostic(`all 30 payouts and 20 deposits final after ${Date.now() - started} ms`);
  const { redeliveries, outOfOrder } = await s.verify();
  t.diagnostic(`notifications delivered again with the same id (at-least-once): ${redeliveries}; final before pending: ${outOfOrder}`);
  assert.ok(killed.length >= KILLS);
});
