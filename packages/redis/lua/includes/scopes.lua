-- Names of the in-flight counters, drain scopes and Retry-After slots (SCOPE in
-- src/ledger-layout.ts): the fleet, one model, one tenant, one tenant on one model.
--@include "ts:ledger-layout"

local S = LAYOUT.scope
local function scope_model(model) return S.model .. model end
local function scope_tenant(tenant) return S.tenant .. tenant end
local function scope_tenant_model(tenant, model) return S.tenantModel .. tenant .. LAYOUT.sep .. model end
