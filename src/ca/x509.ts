// The one place @peculiar/x509 is set up (it needs reflect-metadata first and a
// WebCrypto provider), and key handling: ECDSA P-256 keys as PKCS#8 PEM, the
// form gRPC's file_watcher provider and node:tls read.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';

const crypto = webcrypto as unknown as Crypto;
x509.cryptoProvider.set(crypto);
export { x509 };

export const KEY_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface KeyPair {
  keys: CryptoKeyPair;
  /** PKCS#8 PEM of the private key: write it only with owner-only permissions. */
  privateKeyPem: string;
}

export async function generateKeyPair(): Promise<KeyPair> {
  const keys = (await crypto.subtle.generateKey(KEY_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const der = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { keys, privateKeyPem: x509.PemConverter.encode(der, 'PRIVATE KEY') };
}

/** Imports a PEM private key (PKCS#8 or SEC1 "EC PRIVATE KEY") with its public half. */
export async function importKeyPair(privateKeyPem: string): Promise<KeyPair> {
  let pkcs8: Buffer;
  let spki: Buffer;
  try {
    const k = createPrivateKey(privateKeyPem);
    if (k.asymmetricKeyType !== 'ec' || k.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      throw new Error(`unsupported key type ${k.asymmetricKeyType ?? '?'} ${k.asymmetricKeyDetails?.namedCurve ?? ''}: meshfed uses ECDSA P-256`);
    }
    pkcs8 = k.export({ type: 'pkcs8', format: 'der' });
    spki = createPublicKey(k).export({ type: 'spki', format: 'der' });
  } catch (e) {
    throw new Error(`private key: ${(e as Error).message}`);
  }
  const privateKey = await crypto.subtle.importKey('pkcs8', new Uint8Array(pkcs8), KEY_ALG, true, ['sign']);
  const publicKey = await crypto.subtle.importKey('spki', new Uint8Array(spki), KEY_ALG, true, ['verify']);
  return { keys: { privateKey, publicKey }, privateKeyPem: x509.PemConverter.encode(new Uint8Array(pkcs8), 'PRIVATE KEY') };
}

/** Splits a PEM bundle into its certificates (in order). */
export function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)?.map((c) => `${c}\n`) ?? [];
}
