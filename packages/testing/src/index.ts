export { provideRedis, spawnRedisServer, freePort, findOnPath, type RedisHandle } from './redis-server.js';
export { testRedis, uniquePrefix } from './test-redis.js';
export { spawnRedisCluster, type RedisClusterHandle, type RedisClusterOptions } from './redis-cluster.js';
