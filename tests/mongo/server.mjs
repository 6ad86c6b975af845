// A MongoDB wire-protocol server for the recovery tests (CongoDB from
// @push.rocks/smartmongo).  Usage: node server.mjs PORT
// Any real MongoDB listening on 127.0.0.1 could replace it.
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const port = Number(process.argv[2] || 27017);
const mod = await import(pathToFileURL(join(here, 'node_modules/@push.rocks/smartmongo/dist_ts/congodb/index.js')).href);
const server = new mod.CongoServer({ host: '127.0.0.1', port });
await server.start();
console.log(`listening on 127.0.0.1:${port}`);
const stop = async () => { try { await server.stop(); } catch (e) { /* exiting anyway */ } process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
