import { oldestOpenTransaction, type Pool } from '../db/index.ts';
import { citusInstalled } from './citus-install.ts';
import { connectPooledNode, nodeName, nodesWithShards } from './citus-nodes.ts';

/** Change-capture lag on one Citus node: its oldest open transaction holds that node's horizon back. */
export interface NodeCaptureLag {
  node: string;
  lagSeconds: number | null;
  pid: number | null;
  applicationName: string | null;
  /** The node could not be reached. */
  error?: string;
}

/**
 * Per node, on a Citus coordinator (undefined elsewhere): the age of the oldest transaction open on
 * each node that holds shards. On Citus every node has its own horizon (citus-refresh.ts), so a
 * long transaction on a worker holds back that worker's change log and snapshots, which the
 * coordinator's own oldest transaction does not show.
 */
export async function citusCaptureLag(pool: Pool): Promise<NodeCaptureLag[] | undefined> {
  if (!(await citusInstalled(pool))) return undefined;
  const nodes = await nodesWithShards(pool);
  return Promise.all(
    nodes.map(async (node): Promise<NodeCaptureLag> => {
      let client;
      try {
        client = await connectPooledNode(pool, node, 'aggjobs health', 'health check');
      } catch (error) {
        return {
          node: nodeName(node),
          lagSeconds: null,
          pid: null,
          applicationName: null,
          error: error instanceof Error ? error.message : String(error),
        };
      }
      let broken: Error | undefined;
      try {
        const oldest = await oldestOpenTransaction(client);
        return {
          node: nodeName(node),
          lagSeconds: Math.round(oldest?.ageSeconds ?? 0),
          pid: oldest?.pid ?? null,
          applicationName: oldest?.applicationName ?? null,
        };
      } catch (error) {
        broken = error instanceof Error ? error : new Error(String(error));
        throw error;
      } finally {
        client.release(broken);
      }
    }),
  );
}
