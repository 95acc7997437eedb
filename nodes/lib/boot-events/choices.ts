/**
 * Which entry and ISO a generated pxelinux config boots, by the option 209/210 pair that names it,
 * so a DHCP answer that hands one out can say so (dhcpSignal) and the boot view can tell which
 * entry and ISO a client booted. Written when a config is published (BootMenus), read per answer.
 *
 * Bounded: MAX_CHOICES configs (one per rule and per MAC given a choice at run time); the oldest
 * is forgotten first, and a forgotten one only means a boot event without the entry.
 */
export interface BootChoiceInfo {
  /** The menu entry's label, as the ISO's menu has it ('arch_nfs'). */
  entry?: string;
  /** The ISO's file name ('archlinux-2026.11.01-x86_64.iso'). */
  iso?: string;
}

export const MAX_CHOICES = 4096;

const choices = new Map<string, BootChoiceInfo>();

const keyOf = (pathPrefix: string, configFile: string): string => `${pathPrefix.replace(/^\/+|\/+$/g, '')}\0${configFile.replace(/^\/+/, '')}`;

/** What the config `configFile` (option 209) under `pathPrefix` (option 210) boots; null: nothing chosen (a menu). */
export function recordBootChoice(pathPrefix: string, configFile: string, info: BootChoiceInfo | null): void {
  const key = keyOf(pathPrefix, configFile);
  choices.delete(key);
  if (!info) return;
  choices.set(key, info);
  if (choices.size > MAX_CHOICES) choices.delete(choices.keys().next().value as string);
}

export function bootChoiceFor(pathPrefix: string | undefined, configFile: string | undefined): BootChoiceInfo | undefined {
  if (!configFile) return undefined;
  return choices.get(keyOf(pathPrefix ?? '', configFile));
}
