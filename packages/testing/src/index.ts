export { provideRedis, spawnRedisServer, freePort, findOnPath, type RedisHandle } from './redis-server.js';
export { testRedis, uniquePrefix } from './test-redis.js';
export { spawnRedisCluster, type RedisClusterHandle, type RedisClusterOptions } from './redis-cluster.js';
export { spawnSentinelGroup, type GroupProcess, type SentinelGroup, type SentinelGroupOptions } from './sentinel-group.js';
export { makeTestCertificates, type TestCertificates } from './test-certificates.js';
