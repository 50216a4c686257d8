/**
 * A local Ethereum node for development, tests and benchmarks: anvil from
 * npm (@foundry-rs/anvil ships the binary), started on a free port, plus a
 * deployer for the USDT-like test token. Used by `payment dev`, tests/ and
 * bench/; never by the production roles.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import path from "node:path";
import { existsSync, readFileSync } from "node:fs";
import { ContractFactory, JsonRpcProvider, Wallet, NonceManager, type InterfaceAbi } from "ethers";
import { fromRoot } from "../paths.ts";

export interface Anvil {
  rpcUrl: string;
  wsUrl: string;
  port: number;
  chainId: number;
  /** private keys of anvil's ten funded default accounts (10,000 ETH each) */
  keys: string[];
  process: ChildProcess;
  stop(): Promise<void>;
}

/** anvil's well-known development mnemonic ("test test ... junk"): public, never for real funds. */
export const ANVIL_KEYS = [
  "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
  "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
  "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
  "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
  "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
  "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
  "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
  "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
  "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
  "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
];

function anvilBinary(): string {
  const require = createRequire(import.meta.url);
  const arch = process.arch === "x64" ? "amd64" : process.arch;
  try {
    const pkg = require.resolve(`@foundry-rs/anvil-${process.platform}-${arch}/package.json`);
    const bin = path.join(path.dirname(pkg), "bin", "anvil");
    if (existsSync(bin)) return bin;
  } catch {
    /* fall through to the wrapper */
  }
  return path.join(path.dirname(require.resolve("@foundry-rs/anvil/package.json")), "..", "..", ".bin", "anvil");
}

export interface StartAnvilOptions {
  /** seconds between blocks; omitted = a block per transaction (automine) */
  blockTime?: number;
  chainId?: number;
  port?: number;
  /** keep every block's state (needed for deep reorg tests), default false */
  extraArgs?: string[];
}

export async function startAnvil(opts: StartAnvilOptions = {}): Promise<Anvil> {
  const chainId = opts.chainId ?? 31337;
  const args = ["--port", String(opts.port ?? 0), "--host", "127.0.0.1", "--chain-id", String(chainId), "--accounts", "10"];
  if (opts.blockTime !== undefined) args.push("--block-time", String(opts.blockTime));
  args.push(...(opts.extraArgs ?? []));
  const child = spawn(anvilBinary(), args, { stdio: ["ignore", "pipe", "pipe"] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`anvil did not start: ${out.slice(-500)}`)), 20_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Listening on [\d.]+:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        // anvil logs every RPC call: matching the whole log on each chunk forever
        // grew quadratic (seconds of CPU in benchmarks)
        child.stdout!.off("data", onData);
        child.stderr!.off("data", onData);
        out = "";
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`anvil exited with ${code}: ${out.slice(-500)}`));
    });
  });
  // Keep draining output so anvil never blocks on a full pipe.
  child.stdout!.resume();
  child.stderr!.resume();
  return {
    rpcUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    port,
    chainId,
    keys: ANVIL_KEYS,
    process: child,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
    },
  };
}

interface Artifact {
  abi: InterfaceAbi;
  bytecode: string;
}

/** Development and test contracts (shared/devchain/contracts); production ones are in shared/contracts. */
export type DevContract = "TestUSDT" | "Forwarder" | "RevertingReceiver" | "GasBurner" | "GasHungryReceiver" | "ReentrantReceiver" | "TestBoolToken";

export function artifact(name: DevContract): Artifact {
  const file = fromRoot("shared", "devchain", "contracts", "artifacts.json");
  const all = JSON.parse(readFileSync(file, "utf8")) as { contracts: Record<string, Artifact> };
  const a = all.contracts[name];
  if (!a) throw new Error(`no artifact for ${name}`);
  return a;
}

/** Deploy a contract from the artifacts with `key`; returns its lowercase address. */
export async function deploy(rpcUrl: string, key: string, name: DevContract): Promise<string> {
  const provider = new JsonRpcProvider(rpcUrl, undefined, { staticNetwork: true, cacheTimeout: -1 });
  try {
    const signer = new NonceManager(new Wallet(key, provider));
    const a = artifact(name);
    const contract = await new ContractFactory(a.abi, a.bytecode, signer).deploy();
    await contract.waitForDeployment();
    return (await contract.getAddress()).toLowerCase();
  } finally {
    provider.destroy();
  }
}
