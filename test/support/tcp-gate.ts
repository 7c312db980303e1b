import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

/**
 * A TCP relay in front of a server (a Redis) that a test closes and opens. Closed, it drops
 * every connection it carries and each new one as soon as it comes: to the clients behind
 * it the server is down, while clients connected to it directly go on. So a test decides
 * the order of things a restart leaves to chance, e.g. that a job ends before the API is
 * back on Redis.
 */
export interface TcpGate {
  /** The server's URL through the gate (`redis://127.0.0.1:<port>`). */
  url: string;
  /** Drops every connection through the gate and refuses new ones until `open()`. */
  close(): void;
  open(): void;
  /** Closes the gate and its listening socket. */
  stop(): Promise<void>;
}

export async function startTcpGate(targetUrl: string): Promise<TcpGate> {
  const target = new URL(targetUrl);
  const carried = new Set<Socket>();
  let open = true;
  const server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = connect(Number(target.port), target.hostname);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      carried.delete(client);
      carried.delete(upstream);
    };
    carried.add(client);
    carried.add(upstream);
    for (const socket of [client, upstream]) socket.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const close = () => {
    open = false;
    for (const socket of carried) socket.destroy();
    carried.clear();
  };
  return {
    url: `${target.protocol}//127.0.0.1:${port}`,
    close,
    open: () => void (open = true),
    stop: () =>
      new Promise<void>((resolve) => {
        close();
        server.close(() => resolve());
      }),
  };
}
