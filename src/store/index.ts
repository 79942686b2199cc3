export * from './types';
export { MemoryStore } from './memory-store';
export { LmdbStore, type Durability, type LmdbStoreOptions } from './lmdb-store';
