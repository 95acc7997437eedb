/**
 * proxyDHCP (PXE 2.1 §2.2.3): beside a DHCP server that hands out addresses, answer only PXE
 * clients, only with boot information, and never with an address.
 *
 *  - DISCOVER on port 67 whose option 60 starts with "PXEClient" → OFFER with yiaddr 0.0.0.0,
 *    option 60 "PXEClient", next-server, boot file and option 43 (discovery control 8: boot the
 *    file named here, no menu, no boot-server discovery).
 *  - REQUEST on port 4011 (the client already has its address and asks the boot server) → ACK
 *    with the same boot information, sent back to where the request came from; the boot item it
 *    asked for (option 43 sub-option 71) is echoed in the ACK's option 43, as PXE 2.1 replies do.
 *  - UEFI HTTP Boot clients (option 60 "HTTPClient…") are answered as PXE clients are, with
 *    option 60 "HTTPClient" and the boot file as a URL; they take a proxy offer's URL beside the
 *    other server's address (edk2 HttpBootDxe) and never ask on port 4011.
 *  - Everything else — REQUESTs on port 67 (they belong to the real DHCP server), DISCOVERs on
 *    4011, non-PXE clients, clients no rule matches — gets no answer.
 */
import type { BootRules } from './boot-rules';
import { writeBoot } from './boot-options';
import type { ClientInfo } from './client';
import type { DhcpPacket } from './codec';
import { makeEvent, sentPxelinuxOptions } from './events';
import {
  encodeSubOptions,
  getMessageType,
  getPxeVendorOptions,
  getRequestedIp,
  MessageType,
  messageTypeName,
  Opt,
  parseSubOptions,
  PxeSub,
} from './options';
import { baseReply, finishReply, NO_REPLY, type HandleResult, type Responder } from './reply';
import { PXE_PORT } from './reply-route';

export interface ProxyConfig {
  serverIp: string;
  rules: BootRules;
}

/** Copies the PXE boot item (type, layer) of a boot-server request into the reply's option 43. */
function echoBootItem(req: DhcpPacket, reply: DhcpPacket): void {
  const item = getPxeVendorOptions(req.options)?.raw.get(PxeSub.BOOT_ITEM);
  if (!item || item.length !== 4) return;
  const subs = parseSubOptions(reply.options.get(Opt.VENDOR_SPECIFIC) ?? Buffer.alloc(0));
  // A raw option 43 from a boot rule that is not sub-options, or that sets 71 itself: left as given.
  if (!subs || subs.has(PxeSub.BOOT_ITEM)) return;
  subs.set(PxeSub.BOOT_ITEM, item);
  reply.options.set(Opt.VENDOR_SPECIFIC, encodeSubOptions(subs));
}

export class ProxyResponder implements Responder {
  constructor(private readonly cfg: ProxyConfig) {}

  async handle(req: DhcpPacket, c: ClientInfo, localPort: number): Promise<HandleResult> {
    const type = getMessageType(req.options);
    const name = messageTypeName(type);
    if (!name || (type !== MessageType.DISCOVER && type !== MessageType.REQUEST && type !== MessageType.INFORM)) {
      return NO_REPLY([]);
    }
    const ip = type === MessageType.REQUEST ? (getRequestedIp(req.options) ?? (req.ciaddr !== '0.0.0.0' ? req.ciaddr : null)) : null;
    const received = makeEvent(name, c, req.xid, req.giaddr, { ip });
    const ignore = (reason: string): HandleResult => NO_REPLY([{ ...received, reason }]);

    if (!c.isPxe && !c.isHttpBoot) return ignore('not a PXE client');
    const onPxePort = localPort === PXE_PORT;
    let replyType: number;
    if (type === MessageType.DISCOVER && !onPxePort) replyType = MessageType.OFFER;
    else if (type === MessageType.REQUEST && onPxePort) replyType = MessageType.ACK;
    else if (type === MessageType.INFORM && onPxePort) replyType = MessageType.ACK;
    else return ignore(onPxePort ? 'only REQUEST is answered on port 4011' : 'addresses come from the other DHCP server');

    const decision = this.cfg.rules.decide(c, this.cfg.serverIp);
    if (!decision) return ignore('no boot rule matches');
    if (decision.noBoot) return ignore(`boot rule ${decision.source}: no boot`);
    const reply = baseReply(req, replyType, this.cfg.serverIp, true);
    const bootFile = writeBoot(reply, decision, true);
    if (onPxePort) echoBootItem(req, reply);
    finishReply(req, reply);
    const sent = makeEvent(replyType === MessageType.OFFER ? 'offer' : 'ack', c, req.xid, req.giaddr, {
      ip,
      bootFile,
      bootRule: decision.source,
      ...sentPxelinuxOptions(reply.options),
    });
    return { events: [{ ...received, bootRule: decision.source }, sent], reply, replyType };
  }
}
