// A real `tally serve` for the browser tests: started on a scratch data folder with a manual
// clock, driven through its public APIs (gRPC with grpcurl, REST with fetch), tokens from
// `tally token`.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const TALLY = process.env.TALLY_BIN ?? join(ROOT, "target/debug/tally");

export class Tally {
  /** Starts `tally serve --manual-clock clock` and waits for its `listening on` line. */
  static async start(clock) {
    const data = mkdtempSync(join(tmpdir(), "tally-portal-"));
    const child = spawn(
      TALLY,
      ["serve", "--listen", "127.0.0.1:0", "--data-dir", data, "--manual-clock", clock, "--fold-interval-ms", "50"],
      { stdio: ["ignore", "pipe", "inherit"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" } },
    );
    const addr = await new Promise((done, failed) => {
      const lines = createInterface({ input: child.stdout });
      lines.on("line", (line) => {
        const match = / listening on (\S+)/.exec(line);
        if (match) {
          done(match[1]);
        }
      });
      child.on("exit", (code) => failed(new Error(`tally serve exited (${code}) before listening`)));
      child.on("error", failed);
    });
    return new Tally(child, data, addr);
  }

  constructor(child, data, addr) {
    this.child = child;
    this.data = data;
    this.addr = addr;
    this.base = `http://${addr}`;
  }

  async stop() {
    const exited = new Promise((done) => this.child.once("exit", done));
    this.child.kill("SIGTERM");
    await exited;
    rmSync(this.data, { recursive: true, force: true });
  }

  /** A development token from `tally token`, e.g. token("--role", "operator"). */
  token(...args) {
    return execFileSync(TALLY, ["token", "--data-dir", this.data, ...args], { encoding: "utf8" }).trim();
  }

  /** A gRPC call with grpcurl (reflection, so no .proto files); the answer as proto JSON. */
  grpc(token, method, body = {}) {
    const out = execFileSync(
      "grpcurl",
      ["-plaintext", "-emit-defaults", "-H", `authorization: Bearer ${token}`, "-d", "@", this.addr, method],
      { input: JSON.stringify(body), encoding: "utf8" },
    );
    return out.trim() ? JSON.parse(out) : {};
  }

  /** A REST GET: { status, body } (body parsed as JSON when it is). */
  async rest(token, path) {
    const response = await fetch(this.base + path, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    const text = await response.text();
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: response.status, body, headers: response.headers };
  }

  /** Moves the manual clock to `time`, then waits until everything reported is folded. */
  async advanceTo(operator, time) {
    this.grpc(operator, "tally.clock.v1.Clock/AdvanceClock", { to: time });
    await this.settled(operator);
  }

  /** Waits until no record is pending fold and `complete_through` has reached the clock. */
  async settled(operator) {
    const now = this.grpc(operator, "tally.clock.v1.Clock/GetTime").now;
    for (let attempt = 0; attempt < 200; attempt += 1) {
      const status = this.grpc(operator, "tally.usage.v1.UsageAdmin/GetPipelineStatus");
      if (status.recordsPendingFold === "0" && Date.parse(status.completeThrough) >= Date.parse(now)) {
        return status;
      }
      await new Promise((done) => setTimeout(done, 50));
    }
    throw new Error("the pipeline did not settle within 10 s");
  }
}

/** An exact decimal as a count of 10^-10 units (Tally's quantities have at most ten fractional digits). */
export function units(text) {
  const match = /^(-?)(\d+)(?:\.(\d{1,10}))?$/.exec(String(text).trim());
  if (!match) {
    throw new Error(`not a quantity: ${JSON.stringify(text)}`);
  }
  const value = BigInt(match[2]) * 10n ** 10n + BigInt((match[3] ?? "").padEnd(10, "0"));
  return match[1] ? -value : value;
}
