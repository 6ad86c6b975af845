// A MongoDB wire-protocol server for the recovery tests (CongoDB from
// @push.rocks/smartmongo).  Usage: node server.mjs PORT [PORT_FILE]
// PORT 0 takes a free port from the kernel; PORT_FILE then gets the port
// once the server listens (written whole: a reader never sees half of it).
// Any real MongoDB listening on 127.0.0.1 could replace it.
import { renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const port = Number(process.argv[2] || 27017);
const mod = await import(pathToFileURL(join(here, 'node_modules/@push.rocks/smartmongo/dist_ts/congodb/index.js')).href);
const server = new mod.CongoServer({ host: '127.0.0.1', port });
await server.start();
const bound = server.server.address().port;
if (process.argv[3]) {
	writeFileSync(`${process.argv[3]}.tmp`, `${bound}\n`);
	renameSync(`${process.argv[3]}.tmp`, process.argv[3]);
}
console.log(`listening on 127.0.0.1:${bound}`);
const stop = async () => { try { await server.stop(); } catch (e) { /* exiting anyway */ } process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
