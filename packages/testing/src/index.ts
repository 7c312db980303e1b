export { provideRedis, spawnRedisServer, freePort, findOnPath, type RedisHandle } from './redis-server.js';
export { testRedis, uniquePrefix } from './test-redis.js';
