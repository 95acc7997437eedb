import { installBootView } from './lib/boot-events/view';
import type { RedApi } from './lib/red';

type RedWithPlugins = RedApi & { plugins?: { registerPlugin(id: string, def: Record<string, unknown>): void } };

/**
 * The editor's "PXE" sidebar tab (pxe-sidebar.html beside this file): a Node-RED plugin, so the tab
 * is there whether or not a pxe-boot-events node is deployed. Its runtime side only makes sure the
 * shared boot tracker runs and its admin endpoints exist.
 */
export = function register(RED: RedWithPlugins): void {
  installBootView(RED);
  RED.plugins?.registerPlugin('pxe-boot-sidebar', { type: 'pxe-boot-view' });
};
