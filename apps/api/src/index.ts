export { createApi, type Api } from './server.js';
export { ApiConfig, loadConfig, parseConfig, type ApiConfigInput } from './config.js';
export { ApiError, type ApiErrorCode } from './errors.js';
export { BULL_BOARD_PATH } from './bull-board.js';
export { ACCESS_LEVELS, access, declareAccessOfPluginRoutes, trackAccessDeclarations, type Access, type DeclaredRoute } from './access.js';
export { FLEET_PAGE_PATH } from './routes/admin-fleet.js';
export type { FleetSummary, AgentSummary, ModelQueueSummary } from './fleet-summary.js';
