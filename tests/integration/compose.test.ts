/**
 * docker-compose.yml, the Dockerfile and the Prometheus scrape config, checked
 * without a Docker engine: every service's command is one the CLI knows,
 * dependencies exist and wait for the right condition, migrations run once
 * before any role, roles can be scaled, and no secret is baked in anywhere.
 * The compose config file is loaded through the real config loader with the
 * environment compose would give it.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { Wallet, getCreateAddress } from "ethers";
import { ANVIL_KEYS } from "../../shared/devchain/anvil.ts";
import { ROLES } from "../../cli/roles.ts";
import { applyEnvOverrides, parseConfig } from "../../shared/config/load-config.ts";

const ROOT = path.resolve(import.meta.dirname, "../..");
const read = (f: string) => readFileSync(path.join(ROOT, f), "utf8");

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test?: string[]; disable?: boolean };
  ports?: string[];
  volumes?: string[];
  restart?: string;
  profiles?: string[];
  container_name?: string;
}
const compose = YAML.parse(read("docker-compose.yml"), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;

/** Compose-style interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, $$. */
function interpolate(text: string, env: Record<string, string | undefined>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-|:?\?)([^}]*))?\}/g, (all, name: string | undefined, op: string | undefined, arg: string | undefined) => {
    if (all === "$$") return "$";
    const v = env[name!];
    if (op === ":-") return v ? v : (arg ?? "");
    if (op === "-") return v ?? arg ?? "";
    if (op === ":?" || op === "?") {
      if (!v) throw new Error(`${name}: ${arg}`);
      return v;
    }
    return v ?? "";
  });
}

const SECRETS = { PAYMENT_KEY: "bridge", PAYMENT_MASTER_KEY: "transfer-sender", PAYMENT_DASHBOARD_PASSWORD: "dashboard" } as const;

test("infrastructure: Redis with AOF, RabbitMQ with management, MySQL 8, anvil from npm", () => {
  const redis = services.redis!;
  assert.match(redis.image!, /^redis:/);
  assert.deepEqual(redis.command!.slice(0, 3), ["redis-server", "--appendonly", "yes"]);
  assert.ok(redis.volumes!.some((v) => v.endsWith(":/data")), "AOF lives on a volume");
  assert.match(services.rabbitmq!.image!, /^rabbitmq:[\d.]+-management$/);
  assert.match(services.mysql!.image!, /^mysql:8/);
  const anvil = services.anvil!;
  assert.deepEqual(anvil.entrypoint, ["npx", "anvil"]);
  assert.deepEqual(anvil.command!.slice(0, 2), ["--host", "0.0.0.0"]);
  assert.equal(anvil.image, "payment-gateway:local", "the pinned @foundry-rs/anvil from package-lock, no download at start");
  for (const name of ["redis", "rabbitmq", "mysql", "anvil"]) {
    assert.ok(services[name]!.healthcheck?.test?.length, `${name} has a healthcheck`);
    for (const p of services[name]!.ports ?? []) assert.match(p, /^127\.0\.0\.1:/, `${name} publishes on localhost only`);
  }
});

test("migrations run once, before every role", () => {
  const migrate = services.migrate!;
  assert.deepEqual(migrate.command, ["migrate"]);
  assert.equal(migrate.restart, "no");
  assert.equal(migrate.depends_on?.mysql?.condition, "service_healthy");
  assert.equal(migrate.image, "payment-gateway:local");
});

test("each role is its own service running `payment start --role <role>` after migrate", () => {
  for (const role of ROLES) {
    const s = services[role];
    assert.ok(s, `service ${role}`);
    assert.deepEqual(s.command, ["start", "--role", role], role);
    assert.equal(s.entrypoint, undefined, `${role} uses the image's entrypoint (node bin/payment.mjs)`);
    assert.equal(s.image, "payment-gateway:local");
    const deps = s.depends_on ?? {};
    assert.equal(deps.migrate?.condition, "service_completed_successfully", `${role} waits for migrate`);
    assert.equal(deps.redis?.condition, "service_healthy", `${role} waits for redis`);
    assert.equal(deps.mysql?.condition, "service_healthy", `${role} waits for mysql`);
    assert.ok(s.healthcheck?.test?.length && !s.healthcheck.disable, `${role} has a healthcheck`);
    assert.equal(s.container_name, undefined, `${role}: a fixed container name would prevent --scale`);
    assert.ok(s.volumes?.some((v) => v.endsWith(":/etc/payment/config.json:ro")), `${role} mounts the config read-only`);
    assert.equal(s.environment?.PAYMENT_CONFIG, "/etc/payment/config.json");
  }
  assert.equal(services.bridge!.depends_on!.rabbitmq?.condition, "service_healthy");
  for (const role of ["chain-watch", "transfer-sender", "confirmation"]) assert.equal(services[role]!.depends_on!.anvil?.condition, "service_healthy", role);
  assert.equal(services["chain-watch"]!.depends_on!["devchain-init"]?.condition, "service_completed_successfully");
  for (const role of ["bridge", "chain-watch", "transfer-sender", "confirmation"]) {
    assert.equal(services[role]!.ports, undefined, `${role} publishes no host port, so it can be scaled`);
  }
});

test("every dependency exists, with a valid condition, and there is no cycle", () => {
  const conditions = new Set(["service_started", "service_healthy", "service_completed_successfully"]);
  for (const [name, s] of Object.entries(services)) {
    for (const [dep, d] of Object.entries(s.depends_on ?? {})) {
      assert.ok(services[dep], `${name} depends on unknown service ${dep}`);
      assert.ok(conditions.has(d.condition), `${name} -> ${dep}: ${d.condition}`);
      if (d.condition === "service_healthy") assert.ok(services[dep]!.healthcheck?.test?.length && !services[dep]!.healthcheck?.disable, `${dep} needs a healthcheck`);
      if (!s.profiles) assert.equal(services[dep]!.profiles, undefined, `${name} must not depend on the optional ${dep}`);
    }
  }
  const visiting = new Set<string>();
  const done = new Set<string>();
  const visit = (n: string) => {
    assert.ok(!visiting.has(n), `dependency cycle through ${n}`);
    if (done.has(n)) return;
    visiting.add(n);
    for (const d of Object.keys(services[n]!.depends_on ?? {})) visit(d);
    visiting.delete(n);
    done.add(n);
  };
  Object.keys(services).forEach(visit);
  for (const [name, s] of Object.entries(services)) {
    for (const v of s.volumes ?? []) {
      const [src] = v.split(":");
      if (src!.startsWith("./")) assert.ok(existsSync(path.join(ROOT, src!)), `${name}: ${src} exists`);
      else if (!src!.startsWith("$")) assert.ok(src! in compose.volumes, `${name}: volume ${src} is declared`);
    }
  }
});

test("secrets come from the environment at run time, each only to the role that needs it", () => {
  for (const [name, s] of Object.entries(services)) {
    for (const [key, value] of Object.entries(s.environment ?? {})) {
      if (key in SECRETS) {
        assert.equal(SECRETS[key as keyof typeof SECRETS], name, `${key} is given to ${name}`);
        assert.match(value, new RegExp(`^\\$\\{${key}(:-)?\\}$`), `${name}.${key} is interpolated from .env with no default`);
      }
      if (/PASSWORD|SECRET|_KEY$/.test(key) && !/ALLOW_EMPTY/.test(key)) assert.match(value, /^\$\{[A-Z_]+(:-(guest)?)?\}$/, `${name}.${key}`);
      // credentials inside URLs are interpolated too
      const vars: string[] = [];
      const masked = value.replace(/\$\{[^}]*\}/g, (v) => `@@${vars.push(v) - 1}@@`);
      for (const m of masked.matchAll(/:\/\/([^@/]*)@/g)) {
        const cred = m[1]!.includes(":") ? m[1]!.slice(m[1]!.indexOf(":") + 1) : "";
        const from = /^@@(\d+)@@$/.exec(cred);
        assert.ok(cred === "" || (from && /^\$\{[A-Z_]+(:-(guest)?)?\}$/.test(vars[Number(from[1])]!)), `${name}.${key}: password in URL must come from the environment`);
      }
    }
  }
  for (const [secret, role] of Object.entries(SECRETS)) assert.ok(services[role]!.environment![secret], `${role} gets ${secret}`);

  const dockerfile = read("Dockerfile");
  assert.match(dockerfile, /^FROM node:20/m);
  assert.match(dockerfile, /RUN npm ci/);
  assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/payment\.mjs"\]$/m);
  assert.match(dockerfile, /^USER node$/m);
  for (const line of dockerfile.split("\n").filter((l) => /^(ENV|ARG)\b/.test(l))) {
    assert.doesNotMatch(line, /KEY|PASSWORD|SECRET|TOKEN/i, `no secret in the image: ${line}`);
  }
  const ignored = read(".dockerignore").split("\n").map((l) => l.trim());
  for (const p of [".env", "node_modules", ".dev", ".git"]) assert.ok(ignored.includes(p), `.dockerignore lists ${p}`);
});

test("the compose config file loads with the environment compose gives each role", () => {
  const shell = { MYSQL_ROOT_PASSWORD: "s3cret", RABBITMQ_USER: "pay", RABBITMQ_PASSWORD: "rpass", PAYMENT_KEY: "k".repeat(32) };
  for (const role of ROLES) {
    const s = services[role]!;
    const env = Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolate(v, shell)]));
    const file = interpolate(s.volumes![0]!, shell).split(":")[0]!;
    const raw = JSON.parse(read(file)) as Record<string, unknown>;
    const config = parseConfig(applyEnvOverrides(raw, env));
    assert.equal(config.mysql_url, "mysql://root:s3cret@mysql:3306/payment");
    assert.equal(config.rmq_config.sub_addr, "amqp://pay:rpass@rabbitmq:5672");
    assert.equal(config.redis_url, "redis://redis:6379");
    assert.equal(config.chains.ETH!.rpc_url, "http://anvil:8545");
    assert.equal(config.metrics.port, 9464, "the port the healthchecks and Prometheus use");
    assert.equal(config.metrics.host, "0.0.0.0");
    assert.equal(config.dashboard.host, "0.0.0.0");
    if (role !== "dashboard") assert.match(s.healthcheck!.test!.join(" "), new RegExp(`127\\.0\\.0\\.1:${config.metrics.port}/metrics`));
    else assert.match(s.healthcheck!.test!.join(" "), new RegExp(`127\\.0\\.0\\.1:${config.dashboard.port}/health`));
  }
  const dashPorts = services.dashboard!.ports!;
  assert.deepEqual(dashPorts, ["127.0.0.1:3000:3000"]);
});

test("Prometheus scrapes the dashboard and every role, with the alert rules loaded", () => {
  const prom = YAML.parse(read("deploy/prometheus/prometheus.yml")) as {
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs?: { targets: string[] }[]; dns_sd_configs?: { names: string[]; port: number }[] }[];
  };
  assert.deepEqual(prom.rule_files, ["/etc/prometheus/alerts.yml"]);
  assert.ok(services.prometheus!.volumes!.includes("./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro"));
  const jobs = Object.fromEntries(prom.scrape_configs.map((j) => [j.job_name, j]));
  assert.deepEqual(jobs["payment-dashboard"]!.static_configs![0]!.targets, ["dashboard:3000"]);
  const roles = jobs["payment-roles"]!.dns_sd_configs![0]!;
  assert.deepEqual([...roles.names].sort(), ROLES.filter((r) => r !== "dashboard").sort());
  assert.equal(roles.port, 9464);
  assert.deepEqual(services.prometheus!.profiles, ["monitoring"]);
  assert.deepEqual(services.grafana!.profiles, ["monitoring"]);
});

test("the dev chain's test token lands where the compose config says", () => {
  const raw = JSON.parse(read("deploy/config/compose.config.json")) as { eth_config: { tokens: { USDT: { address: string } }; chain_id: number } };
  const deployer = new Wallet(ANVIL_KEYS[0]!).address;
  assert.equal(raw.eth_config.tokens.USDT.address, getCreateAddress({ from: deployer, nonce: 0 }).toLowerCase());
  assert.equal(raw.eth_config.chain_id, 31337);
  assert.ok(services.anvil!.command!.join(" ").includes("--chain-id 31337"));
  assert.deepEqual(services["devchain-init"]!.entrypoint, ["node", "--import", "tsx", "deploy/dev/deploy-test-token.ts"]);
  assert.ok(existsSync(path.join(ROOT, "deploy/dev/deploy-test-token.ts")));
});
