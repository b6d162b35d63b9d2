export * from './types.ts';
export { replaceUnstorable } from './body.ts';
export { type SignatureCheck, SIGNATURE_TOLERANCE_SECONDS } from './signature.ts';
export {
  parseVapiEvent,
  redactVapiBody,
  VAPI_SIGNATURE_HEADER,
  VAPI_TIMESTAMP_HEADER,
  vapiEventId,
  verifyVapiSignature,
} from './vapi.ts';
export {
  parseGenericEvent,
  verifyGenericSignature,
  WEBHOOK_ID_HEADER,
  WEBHOOK_SIGNATURE_HEADER,
  WEBHOOK_TIMESTAMP_HEADER,
} from './generic.ts';
export {
  createVapiDialer,
  DEFAULT_VAPI_BASE_URL,
  type DialLookup,
  type DialRequest,
  DialError,
  type DialResult,
  VAPI_LIST_LIMIT,
  vapiBaseUrl,
  type VapiDialerOptions,
  type VoiceDialer,
} from './dialer.ts';
export { analyzeCall, type CallAnalysis, type CallAnalysisInput, DEFAULT_ANALYSIS_MODEL } from './analysis.ts';
