// fleetkey: the REST API client, typed errors and fk1 envelopes on the client.
export { FleetKey } from "./client.js";
export type { Binding, ClientOptions, Item, OperationId, PathParams, QueryParams, RequestBody, Response, Schemas } from "./client.js";
export { ConnectionError, EnvelopeError, ERROR_CODES, FleetKeyError } from "./errors.js";
export type { ErrorCode, Retry } from "./errors.js";
export { associatedData, encodeContext, fromArmor, openSingle, parseHeader } from "./envelope.js";
export type { Header } from "./envelope.js";
export { fromBase64, toBase64, toBase64Url } from "./base64.js";
export { ed25519PublicKey, verifyEd25519 } from "./offline.js";
