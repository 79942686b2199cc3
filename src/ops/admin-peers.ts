// Cluster mode: the admin API of one node answers for all (docs/admin-api.md, "Cluster"). It asks
// the other live nodes' admin APIs, found through the members topic, with the same token, and
// marks those requests so that each peer answers for itself only (no request goes round).

/** Set on a request one node makes to another: answer for this node only. */
export const NODE_SCOPE_HEADER = 'x-iot-bridge-scope';
const PEER_TIMEOUT_MS = 3000;

export interface PeerNode {
  node: string;
  admin?: string;
}

export interface ClusterView {
  /** This node's key (`nodeId/incarnation`). */
  node: string;
  /** Every live node, this one first, with its admin address if it has one. */
  nodes(): PeerNode[];
}

export interface PeerAnswer {
  node: string;
  admin: string;
  status: number;
  body: Record<string, unknown>;
}

/** The answers of every other live node with an admin address; a node that does not answer in time is listed in `unreachable`. */
export async function askPeers(cluster: ClusterView, token: string, method: string, pathAndQuery: string): Promise<{ answers: PeerAnswer[]; unreachable: string[] }> {
  const peers = cluster.nodes().filter((n): n is Required<PeerNode> => n.node !== cluster.node && n.admin !== undefined);
  const settled = await Promise.allSettled(peers.map((peer) => askPeer(peer, token, method, pathAndQuery)));
  const answers: PeerAnswer[] = [];
  const unreachable: string[] = [];
  settled.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') answers.push(outcome.value);
    else unreachable.push(peers[i]!.node);
  });
  return { answers, unreachable };
}

async function askPeer(peer: Required<PeerNode>, token: string, method: string, pathAndQuery: string): Promise<PeerAnswer> {
  const res = await fetch(new URL(pathAndQuery, peer.admin), {
    method,
    headers: { authorization: `Bearer ${token}`, [NODE_SCOPE_HEADER]: 'node' },
    signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
  });
  const body: unknown = await res.json();
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error(`${peer.admin}: not a JSON object`);
  return { node: peer.node, admin: peer.admin, status: res.status, body: body as Record<string, unknown> };
}
