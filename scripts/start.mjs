// `npm start`: installs what is missing, builds, and starts Node-RED on http://127.0.0.1:1880 with
// this package loaded and the "Arch PXE" example flow in a disabled tab (nothing is served until
// the user picks an interface and an ISO and enables the tab).
//   node scripts/start.mjs [--port N] [--user-dir DIR] [--no-build]
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const port = Number(opt('--port', process.env.PORT ?? '1880'));
const userDir = path.resolve(opt('--user-dir', path.join(root, '.node-red-dev')));

if (!fs.existsSync(path.join(root, 'node_modules', 'node-red', 'package.json'))) {
  console.log('Installing dependencies (npm ci)…');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
}
if (!args.includes('--no-build')) {
  execFileSync(process.execPath, [path.join(root, 'scripts', 'build.mjs')], { cwd: root, stdio: 'inherit' });
}

// The user dir holds our package as a link to this checkout, like `npm install /path/to/repo`.
fs.mkdirSync(path.join(userDir, 'node_modules', path.dirname(pkg.name)), { recursive: true });
const link = path.join(userDir, 'node_modules', pkg.name);
try {
  fs.rmSync(link, { recursive: true, force: true });
} catch {
  // not there
}
fs.symlinkSync(root, link, 'dir');
fs.writeFileSync(
  path.join(userDir, 'package.json'),
  JSON.stringify({ name: 'node-red-project', private: true, dependencies: { [pkg.name]: `file:${root}` } }, null, 2),
);
fs.writeFileSync(
  path.join(userDir, 'settings.js'),
  `module.exports = {
  uiHost: '127.0.0.1',
  uiPort: ${port},
  flowFile: 'flows.json',
  credentialSecret: false,
  logging: { console: { level: process.env.NODE_RED_LOG_LEVEL || 'info' } },
  editorTheme: { tours: false, palette: { catalogues: [] } },
  // No consent prompt for update checks on first open (it would ask before anything else).
  telemetry: { enabled: false, updateNotification: false },
};
`,
);

// First start only: the Arch PXE example in a disabled tab. Later starts keep the user's edits.
const flowFile = path.join(userDir, 'flows.json');
if (!fs.existsSync(flowFile)) {
  const example = JSON.parse(fs.readFileSync(path.join(root, 'examples', 'Arch PXE.json'), 'utf8'));
  // The example brings its own tab; whatever it says, it starts disabled here.
  const flow = example.map((n) => (n.type === 'tab' ? { ...n, disabled: true } : n));
  fs.writeFileSync(flowFile, JSON.stringify(flow, null, 2));
}

const red = spawn(process.execPath, [path.join(root, 'node_modules', 'node-red', 'red.js'), '--userDir', userDir, '--port', String(port)], {
  cwd: root,
  stdio: 'inherit',
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => red.kill(sig));
red.on('exit', (code, signal) => process.exit(code ?? (signal ? 0 : 1)));
