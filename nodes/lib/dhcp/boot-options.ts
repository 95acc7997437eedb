/**
 * Writes a boot decision (boot-rules.ts) into a reply: siaddr, the file field, options 66, 67,
 * 209, 210, 43, 60 "HTTPClient" and the configured extras. Which field or option carries what is
 * the protocol's business; what the client boots is decided before this.
 */
import type { BootDecision } from './boot-rules';
import type { DhcpPacket } from './codec';
import { encodeExtraOption, Opt, pxeVendorOption, raspberryPiVendorOption, str } from './options';

/**
 * Sets `d`'s boot information on `reply`. `pxeClient`: the client is PXE firmware, which gets the
 * PXE vendor options (43) unless it boots a Raspberry Pi or by HTTP. Returns the boot file given,
 * or null (none, or a no-boot decision, which writes nothing).
 */
export function writeBoot(reply: DhcpPacket, d: BootDecision, pxeClient: boolean): string | null {
  if (d.noBoot) return null;
  reply.siaddr = d.nextServer;
  // UEFI HTTP Boot firmware ignores an offer without option 60 "HTTPClient" (edk2 HttpBootDxe).
  if (d.httpBoot) reply.options.set(Opt.VENDOR_CLASS, str('HTTPClient'));
  if (d.bootFile) {
    // Long URLs (iPXE scripts) do not fit the 128-byte file field: option 67 carries them alone.
    if (Buffer.byteLength(d.bootFile) < 128) reply.file = d.bootFile;
    reply.options.set(Opt.BOOTFILE_NAME, str(d.bootFile));
  }
  if (d.tftpServer) reply.options.set(Opt.TFTP_SERVER_NAME, str(d.tftpServer));
  if (d.configFile) reply.options.set(Opt.PXELINUX_CONFIG_FILE, str(d.configFile));
  if (d.pathPrefix) reply.options.set(Opt.PXELINUX_PATH_PREFIX, str(d.pathPrefix));
  if (d.raspberryPi) reply.options.set(Opt.VENDOR_SPECIFIC, raspberryPiVendorOption());
  else if (pxeClient && !d.httpBoot) reply.options.set(Opt.VENDOR_SPECIFIC, pxeVendorOption());
  for (const o of d.options) reply.options.set(o.code, encodeExtraOption(o));
  return d.bootFile ?? null;
}
