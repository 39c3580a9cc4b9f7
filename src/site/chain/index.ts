/**
 * The proxy chain every glidein connection takes (SOCKS tunnel, KIT's HTTP CONNECT proxy, the target). One kind,
 * proxychains-ng (proxychains.ts), and no profile field to choose another.
 */
export type { ChainReport, Hop, ProxyChain } from './proxychains';
export { parseChainReport, proxyChainFor, renderProxychainsConf } from './proxychains';
