// Start arlocal bound to 127.0.0.1 only (arlocal itself listens on every interface).
// Usage: node launcher.js PORT DB_DIR   (run it with a scratch working directory: arlocal writes ./logs)
"use strict";
const net = require("net");
const path = require("path");

const [port, dbDir] = process.argv.slice(2);
if (!port || !dbDir) {
  console.error("usage: node launcher.js PORT DB_DIR");
  process.exit(2);
}

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  // Koa calls listen(port, callback): pin the host so nothing is reachable from outside.
  if (typeof args[0] === "number" || typeof args[0] === "string") {
    args.splice(1, typeof args[1] === "string" ? 1 : 0, "127.0.0.1");
  }
  return listen.apply(this, args);
};

const root = process.env.ARLOCAL_MODULES || path.resolve(__dirname, "..", "..", "node_modules");
const ArLocal = require(path.join(root, "arlocal", "bin", "app.js")).default;
const arlocal = new ArLocal(Number(port), false, path.resolve(dbDir), false);

arlocal.start().then(() => console.log(`arlocal ready on 127.0.0.1:${port}`));

const stop = () => {
  arlocal.stop().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
