/** What every server reply shares (RFC 2131 table 3), and the interface of the two modes. */
import type { ClientInfo } from './client';
import { BOOTREPLY, createPacket, type DhcpPacket } from './codec';
import type { DhcpEvent } from './events';
import { ipToBuf } from './ip';
import { getClientUuid, getRelayAgentInfo, Opt, str, u8 } from './options';

export interface HandleResult {
  /** What was received and, if a reply is sent, what was sent. */
  events: DhcpEvent[];
  reply: DhcpPacket | null;
  replyType: number;
}

export const NO_REPLY = (events: DhcpEvent[]): HandleResult => ({ events, reply: null, replyType: 0 });

export interface Responder {
  handle(req: DhcpPacket, client: ClientInfo, localPort: number): Promise<HandleResult>;
}

/**
 * A reply to `req` of `type`, from `serverIp`: xid, flags, giaddr and chaddr copied, option 53 and
 * 54 set, option 82 echoed (RFC 3046 §2.2), and for PXE clients option 60 "PXEClient" and the
 * machine UUID echoed (PXE 2.1 and RFC 4578 require both).
 */
export function baseReply(req: DhcpPacket, type: number, serverIp: string, pxe: boolean): DhcpPacket {
  const reply = createPacket({
    op: BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    xid: req.xid,
    flags: req.flags,
    giaddr: req.giaddr,
    chaddr: Buffer.from(req.chaddr),
  });
  reply.options.set(Opt.MESSAGE_TYPE, u8(type));
  reply.options.set(Opt.SERVER_ID, ipToBuf(serverIp));
  if (pxe) {
    reply.options.set(Opt.VENDOR_CLASS, str('PXEClient'));
    const uuid = getClientUuid(req.options);
    if (uuid) reply.options.set(Opt.CLIENT_UUID, uuid);
  }
  return reply;
}

/** Option 82 goes last, as relays expect to find and strip it. */
export function finishReply(req: DhcpPacket, reply: DhcpPacket): DhcpPacket {
  const rai = getRelayAgentInfo(req.options);
  if (rai) {
    reply.options.delete(Opt.RELAY_AGENT_INFO);
    reply.options.set(Opt.RELAY_AGENT_INFO, rai);
  }
  return reply;
}
