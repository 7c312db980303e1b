/**
 * infra/k8s rendered the way `kubectl apply -k` renders it (`kubectl kustomize`, offline), the
 * base and every overlay, and checked without a cluster:
 *
 * - every object is valid against the Kubernetes schemas (`kubernetes-models`), KEDA's
 *   ScaledObject and TriggerAuthentication and the Prometheus operator's ServiceMonitor
 *   against theirs (`@kubernetes-models/keda`, `@kubernetes-models/prometheus-operator`); a
 *   kind none of them knows is a failure, so nothing goes unchecked;
 * - what the schemas cannot see: every ConfigMap, Secret and key a pod refers to exists,
 *   selectors select pods, targets exist, namespaces agree;
 * - the apps' side: images are the Dockerfile's, every environment variable is one the app
 *   reads (names from the apps' own sources) and the app's real `loadConfig` accepts the
 *   values, probes hit the health routes on a declared port, every app container drains on
 *   preStop and its pod's grace period covers the app's own stop (numbers read from the
 *   apps' main.ts and config);
 * - the overlays do what they say: GPU nodes for the base, no GPU anywhere for `sim`, no
 *   REDIS_URL but sentinels for `sentinel`, KEDA scaling a worker Deployment whose pod is the
 *   DaemonSet's for `keda`, from zero, on a backlog route the API serves.
 *
 * The checks return lists of problems naming the object; the tests at the bottom prove the
 * main ones fail on a broken copy. Skipped, saying so, where kubectl is not installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as coreV1 from 'kubernetes-models/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as kedaV1alpha1 from '@kubernetes-models/keda/keda.sh/v1alpha1';
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { envNamesReadBy } from '../support/app-sources.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const K8S = join(ROOT, 'infra/k8s');
const NAMESPACE = 'switchyard';

const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' });
const HAVE_KUBECTL = kubectl.status === 0;
const SKIP_NOTE = HAVE_KUBECTL ? '' : ' (SKIPPED: kubectl is not on PATH; install kubectl with kustomize v5 to render and check infra/k8s)';

/** The base and every overlay: a new overlay is checked without being listed here. */
const TARGETS = ['base', ...readdirSync(join(K8S, 'overlays')).map((name) => `overlays/${name}`)];

/**
 * Names an app reads only once the Redis high-availability work of the same issue is in
 * (the sentinel overlay sets them); tolerated while the app does not list them yet, checked
 * like any other name once it does.
 */
const PENDING_NAMES: Record<string, ReadonlySet<string>> = {
  api: new Set(['REDIS_SENTINELS', 'REDIS_SENTINEL_MASTER', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD']),
  agent: new Set(['REDIS_SENTINELS', 'REDIS_SENTINEL_MASTER', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD']),
};

type Json = Record<string, any>;
interface K8sObject extends Json {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
}

// ---------------------------------------------------------------------------------------------
// Rendering and schema validation
// ---------------------------------------------------------------------------------------------

const rendered = new Map<string, K8sObject[]>();
function render(target: string): K8sObject[] {
  let objects = rendered.get(target);
  if (!objects) {
    const text = execFileSync('kubectl', ['kustomize', join(K8S, target)], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    objects = parseAllDocuments(text).map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${target}: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject;
    });
    rendered.set(target, objects);
  }
  return structuredClone(objects);
}

interface Model {
  apiVersion: string;
  kind: string;
  new (data: unknown): { validate(): void };
}
const MODELS = new Map<string, Model>();
for (const module of [coreV1, appsV1, policyV1, autoscalingV2, kedaV1alpha1, monitoringV1] as Array<Record<string, unknown>>) {
  for (const value of Object.values(module)) {
    const model = value as Partial<Model>;
    if (typeof value === 'function' && typeof model.apiVersion === 'string' && typeof model.kind === 'string') MODELS.set(`${model.apiVersion}/${model.kind}`, model as Model);
  }
}

const idOf = (object: K8sObject) => `${object.kind}/${object.metadata?.name}`;

function schemaProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const object of objects) {
    const model = MODELS.get(`${object.apiVersion}/${object.kind}`);
    if (!model) {
      problems.push(`${idOf(object)}: ${object.apiVersion} ${object.kind} has no schema here; add its models package to test/infra/k8s.test.ts`);
      continue;
    }
    try {
      new model(object).validate();
    } catch (error) {
      problems.push(`${idOf(object)}: ${(error as Error).message}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Pods, containers and what they refer to
// ---------------------------------------------------------------------------------------------

const WORKLOADS = new Set(['Deployment', 'DaemonSet', 'StatefulSet']);
const workloads = (objects: K8sObject[]) => objects.filter((object) => WORKLOADS.has(object.kind));
const find = (objects: K8sObject[], kind: string, name: string) => objects.find((object) => object.kind === kind && object.metadata.name === name);

/** Every container of a pod spec (native sidecars are init containers), with where it sits. */
function containersOf(podSpec: Json): Json[] {
  return [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])];
}

/** The Secret's keys with their values (stringData as written, data decoded). */
function secretData(secret: K8sObject): Record<string, string> {
  const data = Object.fromEntries(Object.entries((secret.data ?? {}) as Record<string, string>).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]));
  return { ...data, ...(secret.stringData ?? {}) };
}

function referenceProblems(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const configMap = (name: string) => find(objects, 'ConfigMap', name)?.data as Record<string, string> | undefined;
  const secret = (name: string) => {
    const found = find(objects, 'Secret', name);
    return found ? secretData(found) : undefined;
  };
  const check = (where: string, kind: 'ConfigMap' | 'Secret', ref: Json, optional = ref.optional === true) => {
    const data = kind === 'ConfigMap' ? configMap(ref.name) : secret(ref.name);
    if (!data) {
      if (!optional) problems.push(`${where}: ${kind} ${ref.name} is not in the render`);
      return;
    }
    if (ref.key !== undefined && !(ref.key in data) && !optional) problems.push(`${where}: ${kind} ${ref.name} has no key ${ref.key}`);
  };
  for (const object of objects) {
    if (object.metadata.namespace !== (object.kind === 'Namespace' ? undefined : NAMESPACE)) {
      problems.push(`${idOf(object)}: namespace ${object.metadata.namespace ?? '(none)'}, not ${NAMESPACE}`);
    }
  }
  for (const workload of workloads(objects)) {
    const pod = workload.spec.template;
    const selector = workload.spec.selector?.matchLabels ?? {};
    if (!matches(selector, pod.metadata?.labels)) problems.push(`${idOf(workload)}: its selector ${JSON.stringify(selector)} does not select its own pods`);
    for (const container of containersOf(pod.spec)) {
      const where = `${idOf(workload)} container ${container.name}`;
      for (const source of container.envFrom ?? []) {
        if (source.configMapRef) check(where, 'ConfigMap', source.configMapRef);
        if (source.secretRef) check(where, 'Secret', source.secretRef);
      }
      for (const variable of container.env ?? []) {
        if (variable.valueFrom?.configMapKeyRef) check(`${where} env ${variable.name}`, 'ConfigMap', variable.valueFrom.configMapKeyRef);
        if (variable.valueFrom?.secretKeyRef) check(`${where} env ${variable.name}`, 'Secret', variable.valueFrom.secretKeyRef);
      }
      const ports = new Set((container.ports ?? []).map((port: Json) => port.name));
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const port = container[probe]?.httpGet?.port;
        if (typeof port === 'string' && !ports.has(port)) problems.push(`${where}: ${probe} uses port ${port}, which the container does not declare`);
      }
    }
  }
  const podsMatching = (selector: Record<string, string>) => workloads(objects).filter((workload) => matches(selector, workload.spec.template.metadata?.labels));
  for (const service of objects.filter((object) => object.kind === 'Service')) {
    const pods = podsMatching(service.spec.selector ?? {});
    if (pods.length === 0) problems.push(`${idOf(service)}: its selector selects no pods`);
    for (const port of service.spec.ports ?? []) {
      if (typeof port.targetPort !== 'string') continue;
      for (const pod of pods) {
        if (!containersOf(pod.spec.template.spec).some((container) => (container.ports ?? []).some((p: Json) => p.name === port.targetPort))) {
          problems.push(`${idOf(service)}: targetPort ${port.targetPort} is no port of ${idOf(pod)}`);
        }
      }
    }
  }
  for (const pdb of objects.filter((object) => object.kind === 'PodDisruptionBudget')) {
    if (podsMatching(pdb.spec.selector?.matchLabels ?? {}).length === 0) problems.push(`${idOf(pdb)}: its selector selects no pods`);
  }
  for (const scaler of objects.filter((object) => object.kind === 'HorizontalPodAutoscaler' || object.kind === 'ScaledObject')) {
    const target = scaler.spec.scaleTargetRef;
    if (!find(objects, target.kind ?? 'Deployment', target.name))
      problems.push(`${idOf(scaler)}: scales ${target.kind ?? 'Deployment'}/${target.name}, which is not in the render`);
    for (const trigger of scaler.spec.triggers ?? []) {
      const auth = trigger.authenticationRef?.name;
      if (auth !== undefined && !find(objects, 'TriggerAuthentication', auth)) problems.push(`${idOf(scaler)}: TriggerAuthentication ${auth} is not in the render`);
    }
  }
  for (const auth of objects.filter((object) => object.kind === 'TriggerAuthentication')) {
    for (const ref of auth.spec.secretTargetRef ?? []) check(idOf(auth), 'Secret', ref);
  }
  for (const monitor of objects.filter((object) => object.kind === 'ServiceMonitor')) {
    const services = objects.filter((object) => object.kind === 'Service' && matches(monitor.spec.selector?.matchLabels ?? {}, object.metadata.labels));
    if (services.length === 0) problems.push(`${idOf(monitor)}: selects no Service`);
    for (const endpoint of monitor.spec.endpoints ?? []) {
      if (!services.every((service) => service.spec.ports.some((port: Json) => port.name === endpoint.port)))
        problems.push(`${idOf(monitor)}: port ${endpoint.port} is not on every Service it selects`);
      if (endpoint.authorization?.credentials) check(idOf(monitor), 'Secret', endpoint.authorization.credentials);
    }
  }
  return problems;
}

function matches(selector: Record<string, string>, labels: Record<string, string> | undefined): boolean {
  return Object.keys(selector).length > 0 && Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

// ---------------------------------------------------------------------------------------------
// The apps' side: images, environment, probes, drain
// ---------------------------------------------------------------------------------------------

/** Stages of infra/docker/Dockerfile: the images `switchyard/<stage>` it builds. */
const DOCKER_STAGES = new Set([...readFileSync(join(ROOT, 'infra/docker/Dockerfile'), 'utf8').matchAll(/^FROM\s+\S+\s+AS\s+(\S+)/gim)].map((match) => match[1]!));
/** The app behind an image of ours, e.g. `switchyard/agent:0.1.0` → `agent`. */
function appOfImage(image: string): string | undefined {
  return /^(?:.*\/)?switchyard\/([a-z-]+)(?::|@|$)/.exec(image)?.[1];
}

/** A number literal `const NAME = 10_000` in an app's source file. */
function constantIn(file: string, name: string): number {
  const match = new RegExp(`const ${name} = ([\\d_]+)`).exec(readFileSync(join(ROOT, file), 'utf8'));
  if (!match) throw new Error(`${file} has no const ${name}`);
  return Number(match[1]!.replace(/_/g, ''));
}

/** The environment a container starts with, as the kubelet builds it (downward API values made up). */
function environmentOf(objects: K8sObject[], container: Json): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    if (source.configMapRef) Object.assign(env, find(objects, 'ConfigMap', source.configMapRef.name)?.data ?? {});
    const secret = source.secretRef && find(objects, 'Secret', source.secretRef.name);
    if (secret) Object.assign(env, secretData(secret));
  }
  for (const variable of container.env ?? []) {
    const from = variable.valueFrom;
    if (variable.value !== undefined) env[variable.name] = String(variable.value);
    else if (from?.configMapKeyRef) {
      const value = find(objects, 'ConfigMap', from.configMapKeyRef.name)?.data?.[from.configMapKeyRef.key];
      if (value !== undefined) env[variable.name] = value;
    } else if (from?.secretKeyRef) {
      const secret = find(objects, 'Secret', from.secretKeyRef.name);
      const value = secret && secretData(secret)[from.secretKeyRef.key];
      if (value !== undefined) env[variable.name] = value;
    } else if (from?.fieldRef) env[variable.name] = `field-${from.fieldRef.fieldPath}`;
  }
  return env;
}

type LoadConfig = (env: Record<string, string | undefined>) => Json;
const loaders = new Map<string, LoadConfig>();
async function loaderOf(app: string): Promise<LoadConfig> {
  let loader = loaders.get(app);
  if (!loader) {
    loader = ((await import(join(ROOT, 'apps', app, 'src', 'config.ts'))) as { loadConfig: LoadConfig }).loadConfig;
    loaders.set(app, loader);
  }
  return loader;
}

/** Paths an app's health routes serve, read from its sources. */
const HEALTH_PATHS: Record<string, Set<string>> = {
  api: new Set([...readFileSync(join(ROOT, 'apps/api/src/routes/health.ts'), 'utf8').matchAll(/app\.get\('([^']+)'/g)].map((match) => match[1]!)),
  agent: new Set(/\[('\/[a-z]+'(?:,\s*'\/[a-z]+')*)\]\.includes\(path\)/.exec(readFileSync(join(ROOT, 'apps/agent/src/agent-http.ts'), 'utf8'))![1]!.match(/\/[a-z]+/g)!),
};

/** How long each app may take to stop after SIGTERM (ms), from its own code and config. */
function stopBudgetMs(app: string, config: Json): number {
  if (app === 'api') return constantIn('apps/api/src/main.ts', 'STOP_DEADLINE_MS');
  if (app === 'agent') return Number(config.agentDrainTimeoutMs) + constantIn('apps/agent/src/main.ts', 'HAND_BACK_BUDGET_MS');
  return 0;
}

/** A preStop `sleep N` delays the SIGTERM by N seconds; other hooks are taken as instant. */
function preStopMs(container: Json): number {
  const command: unknown[] = container.lifecycle?.preStop?.exec?.command ?? [];
  if (command[0] === 'sleep') return Number(command[1]) * 1000;
  return Number(container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
}

async function appProblems(objects: K8sObject[]): Promise<string[]> {
  const problems: string[] = [];
  for (const workload of workloads(objects)) {
    const podSpec = workload.spec.template.spec;
    for (const container of containersOf(podSpec)) {
      const app = appOfImage(container.image);
      if (app === undefined) continue;
      const where = `${idOf(workload)} container ${container.name}`;
      if (!DOCKER_STAGES.has(app)) {
        problems.push(`${where}: image ${container.image} is no stage of infra/docker/Dockerfile (${[...DOCKER_STAGES].join(', ')})`);
        continue;
      }
      const env = environmentOf(objects, container);
      const read = envNamesReadBy(app);
      for (const name of Object.keys(env)) {
        if (!read.has(name) && !PENDING_NAMES[app]?.has(name)) problems.push(`${where}: ${name} is not a variable apps/${app} reads`);
      }
      // gpu-sim takes flags and env through its own loader; api and agent are configured by env only.
      if (app === 'gpu-sim') continue;
      let config: Json;
      try {
        config = (await loaderOf(app))({ ...env });
      } catch (error) {
        problems.push(`${where}: apps/${app} refuses its environment: ${(error as Error).message}`);
        continue;
      }
      for (const probe of ['readinessProbe', 'livenessProbe']) {
        const path = container[probe]?.httpGet?.path;
        if (path === undefined) problems.push(`${where}: no ${probe} over HTTP`);
        else if (!HEALTH_PATHS[app]?.has(path))
          problems.push(`${where}: ${probe} asks ${path}, which apps/${app} does not serve (${[...(HEALTH_PATHS[app] ?? [])].join(', ')})`);
      }
      const port = (container.ports ?? []).find((p: Json) => p.name === container.readinessProbe?.httpGet?.port)?.containerPort;
      const listens = app === 'api' ? config.port : config.httpPort;
      if (port !== listens) problems.push(`${where}: probes go to port ${port}, the app listens on ${listens}`);
      if (app === 'agent' && config.httpHost !== '0.0.0.0') problems.push(`${where}: AGENT_HTTP_HOST is ${config.httpHost}: the kubelet's probes come from outside the pod`);
      if (!container.lifecycle?.preStop) problems.push(`${where}: no preStop: the ${app}'s drain must start before the pod goes`);
      const graceMs = Number(podSpec.terminationGracePeriodSeconds ?? 30) * 1000;
      const neededMs = preStopMs(container) + stopBudgetMs(app, config);
      if (graceMs <= neededMs) problems.push(`${where}: terminationGracePeriodSeconds ${graceMs / 1000} does not cover preStop and the ${app}'s stop (${neededMs / 1000} s)`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

describe.skipIf(!HAVE_KUBECTL)(`infra/k8s renders and validates${SKIP_NOTE}`, () => {
  for (const target of TARGETS) {
    it(`${target}: every object is valid against its schema, refers to what exists, and runs the apps as they expect`, async () => {
      const objects = render(target);
      expect(objects.length).toBeGreaterThan(0);
      expect(schemaProblems(objects)).toEqual([]);
      expect(referenceProblems(objects)).toEqual([]);
      expect(await appProblems(objects)).toEqual([]);
    });
  }

  it('base: the agent runs on GPU nodes beside Ollama, the API has its PDB, HPA and Service', () => {
    const objects = render('base');
    const agent = find(objects, 'DaemonSet', 'switchyard-agent')!;
    const pod = agent.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ 'nvidia.com/gpu.present': 'true' });
    expect(pod.tolerations).toContainEqual(expect.objectContaining({ key: 'nvidia.com/gpu', operator: 'Exists' }));
    const ollama = pod.initContainers.find((container: Json) => container.name === 'ollama');
    expect(ollama).toMatchObject({ restartPolicy: 'Always', resources: { limits: { 'nvidia.com/gpu': 1 } } });
    expect(ollama.image).toMatch(/^ollama\/ollama:/);
    // The agent's backend is the sidecar, on the port and address the sidecar listens on.
    const agentEnv = environmentOf(objects, pod.containers[0]);
    expect(`http://${environmentOf(objects, ollama).OLLAMA_HOST}`).toBe(agentEnv.BACKEND_URL);
    expect(environmentOf(objects, ollama).OLLAMA_NUM_PARALLEL).toBe(agentEnv.BACKEND_NUM_PARALLEL);
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler']) expect(find(objects, kind, 'switchyard-api'), kind).toBeDefined();
    expect(find(objects, 'HorizontalPodAutoscaler', 'switchyard-api')!.spec.metrics[0].resource.name).toBe('cpu');
  });

  it("base: the placeholder keys are refused at start-up, the sim overlay's demo keys are accepted", async () => {
    const { ApiKeyStore } = (await import(join(ROOT, 'apps/api/src/auth.ts'))) as { ApiKeyStore: { fromConfig(config: Json): unknown } };
    const keys = (target: string) => secretData(find(render(target), 'Secret', 'switchyard-secrets')!);
    const base = keys('base');
    expect(() => ApiKeyStore.fromConfig({ adminApiKeys: base.ADMIN_API_KEYS })).toThrow(/ADMIN_API_KEYS/);
    expect(() => ApiKeyStore.fromConfig({ apiKeys: base.API_KEYS })).toThrow(/API_KEYS/);
    const sim = keys('overlays/sim');
    expect(() => ApiKeyStore.fromConfig({ adminApiKeys: sim.ADMIN_API_KEYS, apiKeys: sim.API_KEYS })).not.toThrow();
    expect(sim.ADMIN_API_KEYS!.split(',')).toContain(sim.KEDA_API_KEY);
  });

  it('sim: gpu-sim instead of Ollama, no GPU and no GPU node anywhere, and a Redis of its own', () => {
    const objects = render('overlays/sim');
    expect(JSON.stringify(objects)).not.toMatch(/nvidia|ollama\/ollama/);
    const pod = find(objects, 'DaemonSet', 'switchyard-agent')!.spec.template.spec;
    expect(pod.nodeSelector).toBeUndefined();
    expect(pod.tolerations).toBeUndefined();
    const sim = pod.initContainers.find((container: Json) => appOfImage(container.image) === 'gpu-sim');
    expect(sim).toMatchObject({ restartPolicy: 'Always' });
    const simEnv = environmentOf(objects, sim);
    const agentEnv = environmentOf(objects, pod.containers[0]);
    expect(agentEnv.BACKEND_URL).toBe(`http://${simEnv.GPU_SIM_HOST}:${simEnv.GPU_SIM_PORT}`);
    expect(simEnv.GPU_SIM_VRAM).toBe(agentEnv.GPU_VRAM);
    // The base's REDIS_URL names the `redis` Service, which this overlay brings.
    expect(new URL(agentEnv.REDIS_URL!).hostname.split('.')[0]).toBe(find(objects, 'Service', 'redis')?.metadata.name);
  });

  it('sentinel: no REDIS_URL, the sentinels and the master name for the API and every agent', () => {
    const objects = render('overlays/sentinel');
    for (const workload of workloads(objects)) {
      for (const container of workload.spec.template.spec.containers) {
        const env = environmentOf(objects, container);
        expect(env.REDIS_URL, idOf(workload)).toBeUndefined();
        expect(env.REDIS_SENTINELS?.split(',').length, idOf(workload)).toBeGreaterThanOrEqual(3);
        expect(env.REDIS_SENTINEL_MASTER, idOf(workload)).toBeTruthy();
      }
    }
  });

  it("keda: a worker Deployment with the DaemonSet's pod, scaled from zero on a backlog route the API serves", () => {
    const objects = render('overlays/keda');
    expect(objects.filter((object) => object.kind === 'DaemonSet')).toEqual([]);
    const worker = find(objects, 'Deployment', 'switchyard-gpu-worker')!;
    expect(worker.spec.replicas).toBeUndefined();
    // The same pod as the DaemonSet's but for the agent's identity, its labels and its node selection.
    const daemon = find(render('base'), 'DaemonSet', 'switchyard-agent')!.spec.template.spec;
    const normalize = (spec: Json) => {
      const copy = structuredClone(spec);
      const agent = copy.containers.find((container: Json) => container.name === 'agent');
      agent.env = agent.env.filter((variable: Json) => variable.name !== 'AGENT_ID');
      return copy;
    };
    expect(normalize(worker.spec.template.spec)).toEqual(normalize(daemon));
    const agentId = worker.spec.template.spec.containers[0].env.find((variable: Json) => variable.name === 'AGENT_ID');
    expect(agentId.valueFrom.fieldRef.fieldPath).toBe('metadata.name');

    const scaled = find(objects, 'ScaledObject', 'switchyard-gpu-worker')!;
    expect(scaled.spec).toMatchObject({ minReplicaCount: 0, scaleTargetRef: { name: 'switchyard-gpu-worker' } });
    const trigger = scaled.spec.triggers[0];
    expect(trigger.type).toBe('metrics-api');
    expect(trigger.metadata.valueLocation).toBe('backlog');
    const url = new URL(trigger.metadata.url);
    const service = find(objects, 'Service', 'switchyard-api')!;
    expect(url.hostname).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
    expect(Number(url.port)).toBe(service.spec.ports[0].port);
    const routes = readFileSync(join(ROOT, 'apps/api/src/routes/backlog.ts'), 'utf8');
    expect(routes).toContain(`'${url.pathname}'`);
    // Refused demand must still count when KEDA next looks.
    const api = find(objects, 'Deployment', 'switchyard-api')!.spec.template.spec.containers[0];
    const unservedS = Number(environmentOf(objects, api).UNSERVED_DEMAND_SECONDS ?? 120);
    expect(Number(scaled.spec.pollingInterval ?? 30)).toBeLessThan(unservedS);
    // The key KEDA sends is an admin key of the API.
    const keys = secretData(find(objects, 'Secret', 'switchyard-secrets')!);
    const ref = find(objects, 'TriggerAuthentication', trigger.authenticationRef.name)!.spec.secretTargetRef[0];
    expect(ref.parameter).toBe('apiKey');
    expect(keys.ADMIN_API_KEYS!.split(',')).toContain(keys[ref.key]);
  });

  it('the checks catch broken manifests', async () => {
    const base = render('base');
    const api = () => {
      const copy = structuredClone(base);
      return { copy, pod: find(copy, 'Deployment', 'switchyard-api')!.spec.template.spec };
    };
    let broken = api();
    broken.pod.containers[0].env.push({ name: 'REDIS_ULR', value: 'x' });
    expect(await appProblems(broken.copy)).toEqual([expect.stringMatching(/REDIS_ULR is not a variable apps\/api reads/)]);
    broken = api();
    delete broken.pod.containers[0].lifecycle;
    expect((await appProblems(broken.copy)).join('\n')).toMatch(/no preStop/);
    broken = api();
    broken.pod.terminationGracePeriodSeconds = 12;
    expect((await appProblems(broken.copy)).join('\n')).toMatch(/does not cover preStop and the api's stop \(15 s\)/);
    broken = api();
    broken.pod.containers[0].readinessProbe.httpGet.path = '/ready';
    expect((await appProblems(broken.copy)).join('\n')).toMatch(/asks \/ready, which apps\/api does not serve/);
    broken = api();
    broken.pod.containers[0].env[0].valueFrom.secretKeyRef.key = 'REDIS';
    expect(referenceProblems(broken.copy).join('\n')).toMatch(/Secret switchyard-secrets has no key REDIS/);
    broken = api();
    broken.pod.containers[0].ports[0].containerPort = 'eighty';
    expect(schemaProblems(broken.copy).join('\n')).toMatch(/containerPort/);
    const agent = structuredClone(base);
    find(agent, 'ConfigMap', find(agent, 'DaemonSet', 'switchyard-agent')!.spec.template.spec.containers[0].envFrom[0].configMapRef.name)!.data.AGENT_DRAIN_TIMEOUT_MS =
      '600000';
    expect((await appProblems(agent)).join('\n')).toMatch(/does not cover preStop and the agent's stop \(602 s\)/);
    expect(schemaProblems([{ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } }])).toEqual([expect.stringMatching(/has no schema here/)]);
  });
});

describe('infra/k8s layout', () => {
  it('has a kustomization in the base and in every overlay', () => {
    for (const target of TARGETS) expect(existsSync(join(K8S, target, 'kustomization.yaml')), target).toBe(true);
  });
});
