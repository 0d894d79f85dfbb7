// Certificates: SPIFFE IDs, issuing and checking CSRs, credential files, keys.
export * from './spiffe.js';
export * from './issue.js';
export * from './cert-files.js';
export { generateKeyPair, importKeyPair, splitPem, type KeyPair } from './x509.js';
export * from './server-cert.js';
