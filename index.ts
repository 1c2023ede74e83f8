/** txlog's public entry. Everything a user imports comes from here. */
export * from './wal/index.js';
