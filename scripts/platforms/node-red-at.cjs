// Preloaded with `node --require` to run the Node-RED runtime tests against another Node-RED
// install: when PXE_NODE_RED_DIR names a directory whose node_modules holds node-red (e.g. 5.x),
// `node-red` and `@node-red/*` resolve there instead of the repo's devDependency (4.x).
/* global require */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS preload */
'use strict';
const Module = require('node:module');
const path = require('node:path');
const dir = process.env.PXE_NODE_RED_DIR;
if (dir) {
  const modules = path.join(path.resolve(dir), 'node_modules');
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, ...rest) {
    if (request === 'node-red' || request.startsWith('node-red/') || request.startsWith('@node-red/')) {
      return resolve.call(this, path.join(modules, request), parent, ...rest);
    }
    return resolve.call(this, request, parent, ...rest);
  };
}
