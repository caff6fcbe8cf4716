// A PostgreSQL wire-protocol server over PGlite (PostgreSQL compiled to WebAssembly) built with
// the TimescaleDB extension, for the test of the Timescale migration path:
//   node server.mjs PORT [DATADIR]        (in memory without DATADIR)
// Listens on 127.0.0.1:PORT, prints "ready PORT" once it accepts connections, and stops on
// SIGTERM/SIGINT or when its standard input closes (so it never outlives the test that
// started it). PGlite serves one connection at a time; clients connect with sslmode=disable.
import { PGlite } from "@electric-sql/pglite";
import { timescaledb } from "@electric-sql/pglite/timescaledb";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

const port = Number.parseInt(process.argv[2] ?? "", 10);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node server.mjs PORT [DATADIR]");
  process.exit(2);
}
const db = await PGlite.create(process.argv[3] ?? "memory://", { extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: "127.0.0.1" });
server.addEventListener("error", (event) => console.error("socket error:", event.detail));

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await server.stop();
  await db.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();

await server.start();
console.log(`ready ${port}`);
