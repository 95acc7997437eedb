/** systemd's unit-file syntax (systemd.syntax(7)), as far as a drop-in of capabilities uses it. */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) return;
    const sec = /^\[([A-Za-z0-9-]+)\]$/.exec(line);
    if (sec) {
      current = sections.get(sec[1]!) ?? new Map();
      sections.set(sec[1]!, current);
      return;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`line ${i + 1}: not "Key=Value": ${raw}`);
    if (!current) throw new Error(`line ${i + 1}: ${kv[1]} before any [Section]`);
    current.set(kv[1]!, [...(current.get(kv[1]!) ?? []), kv[2]!]);
  });
  return sections;
}
