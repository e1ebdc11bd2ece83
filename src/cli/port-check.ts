import { createServer } from 'node:net';
import { PortInUseError } from '../web/index.ts';

/**
 * Throws PortInUseError when `port` on `host` is taken, so `start` says so before it migrates,
 * seeds or starts a worker. (Another process may still take the port in between: the dashboard
 * then fails with the same error.)
 */
export async function assertPortFree(port: number, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new PortInUseError(port, host, error) : error),
    );
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve()));
  });
}
