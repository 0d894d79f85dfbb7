// The xDS vocabulary: resource types and shapes, message helpers, resource
// names. Imported by the server, the translation and the policy plugins.
export * from './resources.js';
export * from './messages.js';
export * from './names.js';
