export * from './codec';
export * from './errors';
export * from './packets';
export * from './reason-codes';
export * from './topics';
