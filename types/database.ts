export type Json = string | number | boolean | null | { [key: string]: Json | undefined } | Json[]

export type Database = {
  
  "graphql_public": {
          Tables: {
            [_ in never]: never
          }
          Views: {
            [_ in never]: never
          }
          Functions: {
            "graphql":
{ Args: { "extensions"?: Json,"operationName"?: string,"query"?: string,"variables"?: Json }; Returns: Json
                           }
          }
          Enums: {
            [_ in never]: never
          }
          CompositeTypes: {
            [_ in never]: never
          }
        },"public": {
          Tables: {
            "api_key_scopes": {
                  Row: {
                    "description": string,"scope": string
                  }
                  ComputedFields: never
                  Insert: {
                    "description": string,"scope": string
                  }
                  Update: {
                    "description"?: string,"scope"?: string
                  }
                  Relationships: [
                    
                  ]
                },"api_keys": {
                  Row: {
                    "created_at": string,"created_by": string | null,"expires_at": string | null,"id": string,"last_used_at": string | null,"name": string,"org_id": string,"prefix": string,"rate_limit_per_minute": number,"revoked_at": string | null,"revoked_by": string | null,"scopes": (string)[]
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"id"?: string,"last_used_at"?: string | null,"name": string,"org_id": string,"prefix": string,"rate_limit_per_minute"?: number,"revoked_at"?: string | null,"revoked_by"?: string | null,"scopes": (string)[]
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"expires_at"?: string | null,"id"?: string,"last_used_at"?: string | null,"name"?: string,"org_id"?: string,"prefix"?: string,"rate_limit_per_minute"?: number,"revoked_at"?: string | null,"revoked_by"?: string | null,"scopes"?: (string)[]
                  }
                  Relationships: [
                    {
      foreignKeyName: "api_keys_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"appointments": {
                  Row: {
                    "attendee_email": string | null,"attendee_name": string,"attendee_phone": string | null,"bot_id": string | null,"call_id": string | null,"cancel_reason": string | null,"canceled_at": string | null,"connection_id": string | null,"conversation_id": string | null,"created_at": string,"created_by": string | null,"ends_at": string,"external_event_id": string | null,"id": string,"notes": string | null,"org_id": string,"reschedule_count": number,"resource": string,"source": string,"starts_at": string,"status": string,"sync_attempts": number,"sync_claimed_until": string | null,"sync_error": string | null,"sync_next_attempt_at": string | null,"sync_status": string,"sync_throttled_since": string | null,"time_zone": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attendee_email"?: string | null,"attendee_name": string,"attendee_phone"?: string | null,"bot_id"?: string | null,"call_id"?: string | null,"cancel_reason"?: string | null,"canceled_at"?: string | null,"connection_id"?: string | null,"conversation_id"?: string | null,"created_at"?: string,"created_by"?: string | null,"ends_at": string,"external_event_id"?: string | null,"id"?: string,"notes"?: string | null,"org_id": string,"reschedule_count"?: number,"resource"?: string,"source": string,"starts_at": string,"status"?: string,"sync_attempts"?: number,"sync_claimed_until"?: string | null,"sync_error"?: string | null,"sync_next_attempt_at"?: string | null,"sync_status"?: string,"sync_throttled_since"?: string | null,"time_zone"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "attendee_email"?: string | null,"attendee_name"?: string,"attendee_phone"?: string | null,"bot_id"?: string | null,"call_id"?: string | null,"cancel_reason"?: string | null,"canceled_at"?: string | null,"connection_id"?: string | null,"conversation_id"?: string | null,"created_at"?: string,"created_by"?: string | null,"ends_at"?: string,"external_event_id"?: string | null,"id"?: string,"notes"?: string | null,"org_id"?: string,"reschedule_count"?: number,"resource"?: string,"source"?: string,"starts_at"?: string,"status"?: string,"sync_attempts"?: number,"sync_claimed_until"?: string | null,"sync_error"?: string | null,"sync_next_attempt_at"?: string | null,"sync_status"?: string,"sync_throttled_since"?: string | null,"time_zone"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "appointments_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "appointments_call_fk"
      columns: ["call_id","org_id"]
isOneToOne: false
      referencedRelation: "calls"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "appointments_connection_fk"
      columns: ["connection_id","org_id"]
isOneToOne: false
      referencedRelation: "calendar_connections"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "appointments_conversation_fk"
      columns: ["conversation_id","org_id"]
isOneToOne: false
      referencedRelation: "conversations"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "appointments_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"audit_log": {
                  Row: {
                    "action": string,"actor_api_key_id": string | null,"actor_user_id": string | null,"created_at": string,"hash": string,"hash_version": number,"id": number,"new_values": Json | null,"old_values": Json | null,"org_id": string,"prev_hash": string,"record_id": string | null,"redacted_at": string | null,"seq": number,"table_name": string,"values_hash": string | null,"values_salt": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "action": string,"actor_api_key_id"?: string | null,"actor_user_id"?: string | null,"created_at"?: string,"hash": string,"hash_version"?: number,"id"?: never,"new_values"?: Json | null,"old_values"?: Json | null,"org_id": string,"prev_hash": string,"record_id"?: string | null,"redacted_at"?: string | null,"seq": number,"table_name": string,"values_hash"?: string | null,"values_salt"?: string | null
                  }
                  Update: {
                    "action"?: string,"actor_api_key_id"?: string | null,"actor_user_id"?: string | null,"created_at"?: string,"hash"?: string,"hash_version"?: number,"id"?: never,"new_values"?: Json | null,"old_values"?: Json | null,"org_id"?: string,"prev_hash"?: string,"record_id"?: string | null,"redacted_at"?: string | null,"seq"?: number,"table_name"?: string,"values_hash"?: string | null,"values_salt"?: string | null
                  }
                  Relationships: [
                    
                  ]
                },"bot_collections": {
                  Row: {
                    "bot_id": string,"collection_id": string,"created_at": string,"org_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "bot_id": string,"collection_id": string,"created_at"?: string,"org_id": string
                  }
                  Update: {
                    "bot_id"?: string,"collection_id"?: string,"created_at"?: string,"org_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "bot_collections_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "bot_collections_collection_fk"
      columns: ["collection_id","org_id"]
isOneToOne: false
      referencedRelation: "collections"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "bot_collections_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"bots": {
                  Row: {
                    "channels": (string)[],"created_at": string,"created_by": string | null,"enabled": boolean,"escalation_action": Database["public"]['Enums']["bot_escalation_action"],"greeting": string | null,"id": string,"language": string,"manager_contact": string | null,"max_tokens": number,"model": string,"name": string,"org_id": string,"slug": string,"system_prompt": string,"telegram_connected_at": string | null,"temperature": number,"time_zone": string | null,"updated_at": string,"voice_assistant_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "channels"?: (string)[],"created_at"?: string,"created_by"?: string | null,"enabled"?: boolean,"escalation_action"?: Database["public"]['Enums']["bot_escalation_action"],"greeting"?: string | null,"id"?: string,"language"?: string,"manager_contact"?: string | null,"max_tokens"?: number,"model"?: string,"name": string,"org_id": string,"slug": string,"system_prompt"?: string,"telegram_connected_at"?: string | null,"temperature"?: number,"time_zone"?: string | null,"updated_at"?: string,"voice_assistant_id"?: string | null
                  }
                  Update: {
                    "channels"?: (string)[],"created_at"?: string,"created_by"?: string | null,"enabled"?: boolean,"escalation_action"?: Database["public"]['Enums']["bot_escalation_action"],"greeting"?: string | null,"id"?: string,"language"?: string,"manager_contact"?: string | null,"max_tokens"?: number,"model"?: string,"name"?: string,"org_id"?: string,"slug"?: string,"system_prompt"?: string,"telegram_connected_at"?: string | null,"temperature"?: number,"time_zone"?: string | null,"updated_at"?: string,"voice_assistant_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "bots_model_fkey"
      columns: ["model"]
isOneToOne: false
      referencedRelation: "chat_models"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "bots_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"business_closures": {
                  Row: {
                    "bot_id": string | null,"created_at": string,"created_by": string | null,"during": unknown,"id": string,"org_id": string,"reason": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "bot_id"?: string | null,"created_at"?: string,"created_by"?: string | null,"during": unknown,"id"?: string,"org_id": string,"reason"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "bot_id"?: string | null,"created_at"?: string,"created_by"?: string | null,"during"?: unknown,"id"?: string,"org_id"?: string,"reason"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "business_closures_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "business_closures_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"business_hours": {
                  Row: {
                    "bot_id": string | null,"closes": string,"created_at": string,"id": string,"opens": string,"org_id": string,"updated_at": string,"weekday": number
                  }
                  ComputedFields: never
                  Insert: {
                    "bot_id"?: string | null,"closes": string,"created_at"?: string,"id"?: string,"opens": string,"org_id": string,"updated_at"?: string,"weekday": number
                  }
                  Update: {
                    "bot_id"?: string | null,"closes"?: string,"created_at"?: string,"id"?: string,"opens"?: string,"org_id"?: string,"updated_at"?: string,"weekday"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "business_hours_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "business_hours_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"calendar_connections": {
                  Row: {
                    "account_email": string,"account_subject": string | null,"bot_id": string | null,"connected_at": string,"connected_by": string | null,"created_at": string,"external_calendar_id": string | null,"id": string,"last_refreshed_at": string | null,"org_id": string,"provider": string,"scopes": (string)[],"status": string,"status_reason": string | null,"token_expires_at": string | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "account_email": string,"account_subject"?: string | null,"bot_id"?: string | null,"connected_at"?: string,"connected_by"?: string | null,"created_at"?: string,"external_calendar_id"?: string | null,"id"?: string,"last_refreshed_at"?: string | null,"org_id": string,"provider": string,"scopes"?: (string)[],"status"?: string,"status_reason"?: string | null,"token_expires_at"?: string | null,"updated_at"?: string
                  }
                  Update: {
                    "account_email"?: string,"account_subject"?: string | null,"bot_id"?: string | null,"connected_at"?: string,"connected_by"?: string | null,"created_at"?: string,"external_calendar_id"?: string | null,"id"?: string,"last_refreshed_at"?: string | null,"org_id"?: string,"provider"?: string,"scopes"?: (string)[],"status"?: string,"status_reason"?: string | null,"token_expires_at"?: string | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "calendar_connections_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "calendar_connections_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"call_campaigns": {
                  Row: {
                    "bot_id": string | null,"calls_created": number,"canceled_at": string | null,"created_at": string,"created_by": string | null,"duplicates_removed": number,"id": string,"invalid_numbers": (string)[],"name": string,"org_id": string,"scheduled_at": string | null,"status": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "bot_id"?: string | null,"calls_created"?: number,"canceled_at"?: string | null,"created_at"?: string,"created_by"?: string | null,"duplicates_removed"?: number,"id"?: string,"invalid_numbers"?: (string)[],"name": string,"org_id": string,"scheduled_at"?: string | null,"status"?: string,"updated_at"?: string
                  }
                  Update: {
                    "bot_id"?: string | null,"calls_created"?: number,"canceled_at"?: string | null,"created_at"?: string,"created_by"?: string | null,"duplicates_removed"?: number,"id"?: string,"invalid_numbers"?: (string)[],"name"?: string,"org_id"?: string,"scheduled_at"?: string | null,"status"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "call_campaigns_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "call_campaigns_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"call_events": {
                  Row: {
                    "call_id": string | null,"event_id": string,"event_type": string,"id": number,"occurred_at": string,"org_id": string,"payload": NonNullable<Json>,"provider": string,"received_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "call_id"?: string | null,"event_id": string,"event_type": string,"id"?: never,"occurred_at": string,"org_id": string,"payload"?: NonNullable<Json>,"provider": string,"received_at"?: string
                  }
                  Update: {
                    "call_id"?: string | null,"event_id"?: string,"event_type"?: string,"id"?: never,"occurred_at"?: string,"org_id"?: string,"payload"?: NonNullable<Json>,"provider"?: string,"received_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "call_events_call_id_fkey"
      columns: ["call_id"]
isOneToOne: false
      referencedRelation: "calls"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "call_events_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"call_feedback": {
                  Row: {
                    "call_id": string,"comment": string | null,"created_at": string,"id": string,"org_id": string,"rating": number,"updated_at": string,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "call_id": string,"comment"?: string | null,"created_at"?: string,"id"?: string,"org_id": string,"rating": number,"updated_at"?: string,"user_id"?: string | null
                  }
                  Update: {
                    "call_id"?: string,"comment"?: string | null,"created_at"?: string,"id"?: string,"org_id"?: string,"rating"?: number,"updated_at"?: string,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "call_feedback_call_fk"
      columns: ["call_id","org_id"]
isOneToOne: false
      referencedRelation: "calls"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "call_feedback_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"call_providers": {
                  Row: {
                    "created_at": string,"created_by": string | null,"org_id": string,"outbound_phone_number_id": string | null,"previous_secret_valid_until": string | null,"provider": string,"secret_created_at": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"org_id": string,"outbound_phone_number_id"?: string | null,"previous_secret_valid_until"?: string | null,"provider": string,"secret_created_at": string,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"org_id"?: string,"outbound_phone_number_id"?: string | null,"previous_secret_valid_until"?: string | null,"provider"?: string,"secret_created_at"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "call_providers_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"call_transcript_segments": {
                  Row: {
                    "call_id": string,"created_at": string,"end_ms": number,"id": number,"llm_ms": number | null,"org_id": string,"seq": number,"speaker": string,"start_ms": number,"stt_ms": number | null,"text": string,"tts_ms": number | null
                  }
                  ComputedFields: never
                  Insert: {
                    "call_id": string,"created_at"?: string,"end_ms": number,"id"?: never,"llm_ms"?: number | null,"org_id": string,"seq": number,"speaker": string,"start_ms": number,"stt_ms"?: number | null,"text": string,"tts_ms"?: number | null
                  }
                  Update: {
                    "call_id"?: string,"created_at"?: string,"end_ms"?: number,"id"?: never,"llm_ms"?: number | null,"org_id"?: string,"seq"?: number,"speaker"?: string,"start_ms"?: number,"stt_ms"?: number | null,"text"?: string,"tts_ms"?: number | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "call_transcript_segments_call_fk"
      columns: ["call_id","org_id"]
isOneToOne: false
      referencedRelation: "calls"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "call_transcript_segments_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"calls": {
                  Row: {
                    "analysis_attempts": number,"analysis_requested_at": string | null,"bot_id": string | null,"callee_time_zone": string | null,"campaign_id": string | null,"conversation_id": string | null,"cost": number | null,"cost_breakdown": Json | null,"cost_currency": string,"created_at": string,"created_by": string | null,"dial_attempts": number,"dial_lease_until": string | null,"dial_lookups": number,"dial_started_at": string | null,"dial_target": Json | null,"dial_throttled_since": string | null,"direction": Database["public"]['Enums']["call_direction"],"duration_seconds": number | null,"ended_at": string | null,"ended_event_id": string | null,"ended_reason": string | null,"from_number": string | null,"has_transcript": boolean,"id": string,"last_dial_error": string | null,"last_event_at": string | null,"llm_latency_ms": number | null,"next_dial_at": string | null,"org_id": string,"provider": string | null,"provider_call_id": string | null,"recording_path": string | null,"recording_url": string | null,"scheduled_at": string | null,"sentiment": Database["public"]['Enums']["call_sentiment"],"sentiment_score": number | null,"started_at": string | null,"started_event_id": string | null,"status": Database["public"]['Enums']["call_status"],"status_occurred_at": string,"status_rank": number,"stt_latency_ms": number | null,"summary": string | null,"to_number": string | null,"transcript_final": boolean,"tts_latency_ms": number | null,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "analysis_attempts"?: number,"analysis_requested_at"?: string | null,"bot_id"?: string | null,"callee_time_zone"?: string | null,"campaign_id"?: string | null,"conversation_id"?: string | null,"cost"?: number | null,"cost_breakdown"?: Json | null,"cost_currency"?: string,"created_at"?: string,"created_by"?: string | null,"dial_attempts"?: number,"dial_lease_until"?: string | null,"dial_lookups"?: number,"dial_started_at"?: string | null,"dial_target"?: Json | null,"dial_throttled_since"?: string | null,"direction": Database["public"]['Enums']["call_direction"],"duration_seconds"?: number | null,"ended_at"?: string | null,"ended_event_id"?: string | null,"ended_reason"?: string | null,"from_number"?: string | null,"has_transcript"?: boolean,"id"?: string,"last_dial_error"?: string | null,"last_event_at"?: string | null,"llm_latency_ms"?: number | null,"next_dial_at"?: string | null,"org_id": string,"provider"?: string | null,"provider_call_id"?: string | null,"recording_path"?: string | null,"recording_url"?: string | null,"scheduled_at"?: string | null,"sentiment"?: Database["public"]['Enums']["call_sentiment"],"sentiment_score"?: number | null,"started_at"?: string | null,"started_event_id"?: string | null,"status"?: Database["public"]['Enums']["call_status"],"status_occurred_at"?: string,"status_rank"?: never,"stt_latency_ms"?: number | null,"summary"?: string | null,"to_number"?: string | null,"transcript_final"?: boolean,"tts_latency_ms"?: number | null,"updated_at"?: string
                  }
                  Update: {
                    "analysis_attempts"?: number,"analysis_requested_at"?: string | null,"bot_id"?: string | null,"callee_time_zone"?: string | null,"campaign_id"?: string | null,"conversation_id"?: string | null,"cost"?: number | null,"cost_breakdown"?: Json | null,"cost_currency"?: string,"created_at"?: string,"created_by"?: string | null,"dial_attempts"?: number,"dial_lease_until"?: string | null,"dial_lookups"?: number,"dial_started_at"?: string | null,"dial_target"?: Json | null,"dial_throttled_since"?: string | null,"direction"?: Database["public"]['Enums']["call_direction"],"duration_seconds"?: number | null,"ended_at"?: string | null,"ended_event_id"?: string | null,"ended_reason"?: string | null,"from_number"?: string | null,"has_transcript"?: boolean,"id"?: string,"last_dial_error"?: string | null,"last_event_at"?: string | null,"llm_latency_ms"?: number | null,"next_dial_at"?: string | null,"org_id"?: string,"provider"?: string | null,"provider_call_id"?: string | null,"recording_path"?: string | null,"recording_url"?: string | null,"scheduled_at"?: string | null,"sentiment"?: Database["public"]['Enums']["call_sentiment"],"sentiment_score"?: number | null,"started_at"?: string | null,"started_event_id"?: string | null,"status"?: Database["public"]['Enums']["call_status"],"status_occurred_at"?: string,"status_rank"?: never,"stt_latency_ms"?: number | null,"summary"?: string | null,"to_number"?: string | null,"transcript_final"?: boolean,"tts_latency_ms"?: number | null,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "calls_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "calls_campaign_fk"
      columns: ["campaign_id","org_id"]
isOneToOne: false
      referencedRelation: "call_campaigns"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "calls_conversation_fk"
      columns: ["conversation_id","org_id"]
isOneToOne: false
      referencedRelation: "conversations"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "calls_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"catalog_categories": {
                  Row: {
                    "created_at": string,"id": string,"name": string,"org_id": string,"parent_id": string | null,"position": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"id"?: string,"name": string,"org_id": string,"parent_id"?: string | null,"position"?: number,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"id"?: string,"name"?: string,"org_id"?: string,"parent_id"?: string | null,"position"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "catalog_categories_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "catalog_categories_parent_fk"
      columns: ["parent_id","org_id"]
isOneToOne: false
      referencedRelation: "catalog_categories"
      referencedColumns: ["id","org_id"]
    }
                  ]
                },"chat_models": {
                  Row: {
                    "context_window": number,"display_name": string,"enabled": boolean,"id": string,"max_output_tokens": number,"provider": string
                  }
                  ComputedFields: never
                  Insert: {
                    "context_window": number,"display_name": string,"enabled"?: boolean,"id": string,"max_output_tokens": number,"provider": string
                  }
                  Update: {
                    "context_window"?: number,"display_name"?: string,"enabled"?: boolean,"id"?: string,"max_output_tokens"?: number,"provider"?: string
                  }
                  Relationships: [
                    
                  ]
                },"collections": {
                  Row: {
                    "created_at": string,"created_by": string | null,"description": string,"id": string,"name": string,"org_id": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"description"?: string,"id"?: string,"name": string,"org_id": string,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"description"?: string,"id"?: string,"name"?: string,"org_id"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "collections_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"conversations": {
                  Row: {
                    "api_key_id": string | null,"bot_id": string,"channel": Database["public"]['Enums']["chat_channel"],"closed_at": string | null,"created_at": string,"escalated_at": string | null,"escalation_reason": string | null,"external_conversation_id": string | null,"external_user_id": string | null,"id": string,"last_message_at": string | null,"message_count": number,"org_id": string,"status": Database["public"]['Enums']["conversation_status"],"updated_at": string,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "api_key_id"?: string | null,"bot_id": string,"channel": Database["public"]['Enums']["chat_channel"],"closed_at"?: string | null,"created_at"?: string,"escalated_at"?: string | null,"escalation_reason"?: string | null,"external_conversation_id"?: string | null,"external_user_id"?: string | null,"id"?: string,"last_message_at"?: string | null,"message_count"?: number,"org_id": string,"status"?: Database["public"]['Enums']["conversation_status"],"updated_at"?: string,"user_id"?: string | null
                  }
                  Update: {
                    "api_key_id"?: string | null,"bot_id"?: string,"channel"?: Database["public"]['Enums']["chat_channel"],"closed_at"?: string | null,"created_at"?: string,"escalated_at"?: string | null,"escalation_reason"?: string | null,"external_conversation_id"?: string | null,"external_user_id"?: string | null,"id"?: string,"last_message_at"?: string | null,"message_count"?: number,"org_id"?: string,"status"?: Database["public"]['Enums']["conversation_status"],"updated_at"?: string,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "conversations_api_key_fk"
      columns: ["api_key_id","org_id"]
isOneToOne: false
      referencedRelation: "api_keys"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "conversations_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "conversations_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"data_exports": {
                  Row: {
                    "attempts_at_cursor": number,"created_at": string,"cursor": NonNullable<Json>,"error": string | null,"expired_at": string | null,"expires_at": string | null,"finished_at": string | null,"id": string,"lease_until": string | null,"org_id": string,"progress_percent": number,"requested_by": string | null,"status": Database["public"]['Enums']["data_export_status"],"steps": number,"storage_prefix": string,"tables": (string)[],"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempts_at_cursor"?: number,"created_at"?: string,"cursor"?: NonNullable<Json>,"error"?: string | null,"expired_at"?: string | null,"expires_at"?: string | null,"finished_at"?: string | null,"id"?: string,"lease_until"?: string | null,"org_id": string,"progress_percent"?: number,"requested_by"?: string | null,"status"?: Database["public"]['Enums']["data_export_status"],"steps"?: number,"storage_prefix": string,"tables": (string)[],"updated_at"?: string
                  }
                  Update: {
                    "attempts_at_cursor"?: number,"created_at"?: string,"cursor"?: NonNullable<Json>,"error"?: string | null,"expired_at"?: string | null,"expires_at"?: string | null,"finished_at"?: string | null,"id"?: string,"lease_until"?: string | null,"org_id"?: string,"progress_percent"?: number,"requested_by"?: string | null,"status"?: Database["public"]['Enums']["data_export_status"],"steps"?: number,"storage_prefix"?: string,"tables"?: (string)[],"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "data_exports_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"document_chunks": {
                  Row: {
                    "chunk_index": number,"collection_id": string | null,"content": string,"document_id": string,"embedding": string,"fts": unknown,"id": number,"org_id": string,"page_end": number,"page_start": number,"token_count": number
                  }
                  ComputedFields: never
                  Insert: {
                    "chunk_index": number,"collection_id"?: string | null,"content": string,"document_id": string,"embedding": string,"fts"?: never,"id"?: never,"org_id": string,"page_end": number,"page_start": number,"token_count": number
                  }
                  Update: {
                    "chunk_index"?: number,"collection_id"?: string | null,"content"?: string,"document_id"?: string,"embedding"?: string,"fts"?: never,"id"?: never,"org_id"?: string,"page_end"?: number,"page_start"?: number,"token_count"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "document_chunks_collection_fk"
      columns: ["collection_id","org_id"]
isOneToOne: false
      referencedRelation: "collections"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "document_chunks_document_fk"
      columns: ["document_id","org_id"]
isOneToOne: false
      referencedRelation: "documents"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "document_chunks_org_id_fkey1"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"documents": {
                  Row: {
                    "batch_id": string | null,"checksum_sha256": string | null,"chunk_count": number,"collection_id": string | null,"content_sha256": string | null,"created_at": string,"created_by": string | null,"deletion_started_at": string | null,"embedding_model": string | null,"failure_reason": string | null,"id": string,"ingest_attempts": number,"ingest_cursor": number,"ingest_deferred_since": string | null,"ingest_model": string | null,"ingest_run": string | null,"ingest_stalls": number,"ingest_started_at": string | null,"ingest_wake_at": string | null,"ingested_at": string | null,"last_failure_reason": string | null,"mime_type": string,"name": string,"org_id": string,"page_count": number | null,"progress": number,"project_id": string | null,"retried_at": string | null,"size_bytes": number,"status": Database["public"]['Enums']["document_status"],"storage_path": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "batch_id"?: string | null,"checksum_sha256"?: string | null,"chunk_count"?: number,"collection_id"?: string | null,"content_sha256"?: string | null,"created_at"?: string,"created_by"?: string | null,"deletion_started_at"?: string | null,"embedding_model"?: string | null,"failure_reason"?: string | null,"id"?: string,"ingest_attempts"?: number,"ingest_cursor"?: number,"ingest_deferred_since"?: string | null,"ingest_model"?: string | null,"ingest_run"?: string | null,"ingest_stalls"?: number,"ingest_started_at"?: string | null,"ingest_wake_at"?: string | null,"ingested_at"?: string | null,"last_failure_reason"?: string | null,"mime_type": string,"name": string,"org_id": string,"page_count"?: number | null,"progress"?: number,"project_id"?: string | null,"retried_at"?: string | null,"size_bytes": number,"status"?: Database["public"]['Enums']["document_status"],"storage_path": string,"updated_at"?: string
                  }
                  Update: {
                    "batch_id"?: string | null,"checksum_sha256"?: string | null,"chunk_count"?: number,"collection_id"?: string | null,"content_sha256"?: string | null,"created_at"?: string,"created_by"?: string | null,"deletion_started_at"?: string | null,"embedding_model"?: string | null,"failure_reason"?: string | null,"id"?: string,"ingest_attempts"?: number,"ingest_cursor"?: number,"ingest_deferred_since"?: string | null,"ingest_model"?: string | null,"ingest_run"?: string | null,"ingest_stalls"?: number,"ingest_started_at"?: string | null,"ingest_wake_at"?: string | null,"ingested_at"?: string | null,"last_failure_reason"?: string | null,"mime_type"?: string,"name"?: string,"org_id"?: string,"page_count"?: number | null,"progress"?: number,"project_id"?: string | null,"retried_at"?: string | null,"size_bytes"?: number,"status"?: Database["public"]['Enums']["document_status"],"storage_path"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "documents_batch_fk"
      columns: ["batch_id","org_id"]
isOneToOne: false
      referencedRelation: "upload_batch_progress"
      referencedColumns: ["batch_id","org_id"]
    },{
      foreignKeyName: "documents_batch_fk"
      columns: ["batch_id","org_id"]
isOneToOne: false
      referencedRelation: "upload_batches"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "documents_collection_fk"
      columns: ["collection_id","org_id"]
isOneToOne: false
      referencedRelation: "collections"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "documents_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "documents_project_fk"
      columns: ["project_id","org_id"]
isOneToOne: false
      referencedRelation: "projects"
      referencedColumns: ["id","org_id"]
    }
                  ]
                },"event_types": {
                  Row: {
                    "description": string,"schema": NonNullable<Json>,"type": string
                  }
                  ComputedFields: never
                  Insert: {
                    "description": string,"schema": NonNullable<Json>,"type": string
                  }
                  Update: {
                    "description"?: string,"schema"?: NonNullable<Json>,"type"?: string
                  }
                  Relationships: [
                    
                  ]
                },"events": {
                  Row: {
                    "created_at": string,"id": string,"org_id": string,"payload": NonNullable<Json>,"type": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"id"?: string,"org_id": string,"payload": NonNullable<Json>,"type": string
                  }
                  Update: {
                    "created_at"?: string,"id"?: string,"org_id"?: string,"payload"?: NonNullable<Json>,"type"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "events_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "events_type_fkey"
      columns: ["type"]
isOneToOne: false
      referencedRelation: "event_types"
      referencedColumns: ["type"]
    }
                  ]
                },"invitations": {
                  Row: {
                    "accepted_at": string | null,"accepted_by": string | null,"created_at": string,"email": string,"expires_at": string,"id": string,"invited_by": string | null,"last_sent_at": string,"org_id": string,"revoked_at": string | null,"revoked_by": string | null,"role": Database["public"]['Enums']["org_role"],"send_count": number
                  }
                  ComputedFields: never
                  Insert: {
                    "accepted_at"?: string | null,"accepted_by"?: string | null,"created_at"?: string,"email": string,"expires_at": string,"id"?: string,"invited_by"?: string | null,"last_sent_at"?: string,"org_id": string,"revoked_at"?: string | null,"revoked_by"?: string | null,"role": Database["public"]['Enums']["org_role"],"send_count"?: number
                  }
                  Update: {
                    "accepted_at"?: string | null,"accepted_by"?: string | null,"created_at"?: string,"email"?: string,"expires_at"?: string,"id"?: string,"invited_by"?: string | null,"last_sent_at"?: string,"org_id"?: string,"revoked_at"?: string | null,"revoked_by"?: string | null,"role"?: Database["public"]['Enums']["org_role"],"send_count"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "invitations_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"invoice_lines": {
                  Row: {
                    "amount_cents": number,"description": string,"id": string,"invoice_id": string,"kind": string,"metric": string | null,"org_id": string,"position": number,"quantity": number,"unit": string,"unit_price_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "amount_cents": number,"description": string,"id"?: string,"invoice_id": string,"kind": string,"metric"?: string | null,"org_id": string,"position": number,"quantity": number,"unit": string,"unit_price_cents": number
                  }
                  Update: {
                    "amount_cents"?: number,"description"?: string,"id"?: string,"invoice_id"?: string,"kind"?: string,"metric"?: string | null,"org_id"?: string,"position"?: number,"quantity"?: number,"unit"?: string,"unit_price_cents"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "invoice_lines_invoice_fk"
      columns: ["invoice_id","org_id"]
isOneToOne: false
      referencedRelation: "invoices"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "invoice_lines_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"invoices": {
                  Row: {
                    "created_at": string,"currency": string,"id": string,"org_id": string,"pdf_path": string | null,"period_end": string,"period_start": string,"plan_id": string,"status": string,"subscription_id": string | null,"subtotal_cents": number,"total_cents": number,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"currency": string,"id"?: string,"org_id": string,"pdf_path"?: string | null,"period_end": string,"period_start": string,"plan_id": string,"status"?: string,"subscription_id"?: string | null,"subtotal_cents": number,"total_cents": number,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"currency"?: string,"id"?: string,"org_id"?: string,"pdf_path"?: string | null,"period_end"?: string,"period_start"?: string,"plan_id"?: string,"status"?: string,"subscription_id"?: string | null,"subtotal_cents"?: number,"total_cents"?: number,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "invoices_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "invoices_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "plans"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "invoices_subscription_id_fkey"
      columns: ["subscription_id"]
isOneToOne: false
      referencedRelation: "subscriptions"
      referencedColumns: ["id"]
    }
                  ]
                },"memberships": {
                  Row: {
                    "created_at": string,"org_id": string,"role": Database["public"]['Enums']["org_role"],"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"org_id": string,"role": Database["public"]['Enums']["org_role"],"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"org_id"?: string,"role"?: Database["public"]['Enums']["org_role"],"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "memberships_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"messages": {
                  Row: {
                    "citations": NonNullable<Json>,"content": string,"conversation_id": string,"created_at": string,"finish_reason": string | null,"id": number,"latency_ms": number | null,"model": string | null,"org_id": string,"reply_to_message_id": number | null,"role": Database["public"]['Enums']["message_role"],"tokens_in": number,"tokens_out": number
                  }
                  ComputedFields: never
                  Insert: {
                    "citations"?: NonNullable<Json>,"content": string,"conversation_id": string,"created_at"?: string,"finish_reason"?: string | null,"id"?: never,"latency_ms"?: number | null,"model"?: string | null,"org_id": string,"reply_to_message_id"?: number | null,"role": Database["public"]['Enums']["message_role"],"tokens_in"?: number,"tokens_out"?: number
                  }
                  Update: {
                    "citations"?: NonNullable<Json>,"content"?: string,"conversation_id"?: string,"created_at"?: string,"finish_reason"?: string | null,"id"?: never,"latency_ms"?: number | null,"model"?: string | null,"org_id"?: string,"reply_to_message_id"?: number | null,"role"?: Database["public"]['Enums']["message_role"],"tokens_in"?: number,"tokens_out"?: number
                  }
                  Relationships: [
                    {
      foreignKeyName: "messages_conversation_fk"
      columns: ["conversation_id","org_id"]
isOneToOne: false
      referencedRelation: "conversations"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "messages_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"org_settings": {
                  Row: {
                    "created_at": string,"default_chat_model": string,"interruption_sensitivity": number,"max_tokens": number,"notification_preferences": NonNullable<Json>,"org_id": string,"speaking_rate": number,"temperature": number,"updated_at": string,"updated_by": string | null,"voice": string,"voice_language": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"default_chat_model"?: string,"interruption_sensitivity"?: number,"max_tokens"?: number,"notification_preferences"?: NonNullable<Json>,"org_id": string,"speaking_rate"?: number,"temperature"?: number,"updated_at"?: string,"updated_by"?: string | null,"voice"?: string,"voice_language"?: string
                  }
                  Update: {
                    "created_at"?: string,"default_chat_model"?: string,"interruption_sensitivity"?: number,"max_tokens"?: number,"notification_preferences"?: NonNullable<Json>,"org_id"?: string,"speaking_rate"?: number,"temperature"?: number,"updated_at"?: string,"updated_by"?: string | null,"voice"?: string,"voice_language"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "org_settings_default_chat_model_fkey"
      columns: ["default_chat_model"]
isOneToOne: false
      referencedRelation: "chat_models"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "org_settings_org_id_fkey"
      columns: ["org_id"]
isOneToOne: true
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"organizations": {
                  Row: {
                    "created_at": string,"created_by": string | null,"id": string,"name": string,"slug": string,"time_zone": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"name": string,"slug": string,"time_zone"?: string,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"id"?: string,"name"?: string,"slug"?: string,"time_zone"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    
                  ]
                },"plan_overage_prices": {
                  Row: {
                    "metric": string,"plan_id": string,"price_cents_per_unit": number,"unit": string
                  }
                  ComputedFields: never
                  Insert: {
                    "metric": string,"plan_id": string,"price_cents_per_unit": number,"unit": string
                  }
                  Update: {
                    "metric"?: string,"plan_id"?: string,"price_cents_per_unit"?: number,"unit"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "plan_overage_prices_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "plans"
      referencedColumns: ["id"]
    }
                  ]
                },"plans": {
                  Row: {
                    "currency": string,"id": string,"max_documents": number,"monthly_call_minutes": number,"monthly_chat_tokens": number,"monthly_embedding_tokens": number,"name": string,"price_cents": number
                  }
                  ComputedFields: never
                  Insert: {
                    "currency"?: string,"id": string,"max_documents": number,"monthly_call_minutes": number,"monthly_chat_tokens": number,"monthly_embedding_tokens": number,"name": string,"price_cents": number
                  }
                  Update: {
                    "currency"?: string,"id"?: string,"max_documents"?: number,"monthly_call_minutes"?: number,"monthly_chat_tokens"?: number,"monthly_embedding_tokens"?: number,"name"?: string,"price_cents"?: number
                  }
                  Relationships: [
                    
                  ]
                },"products": {
                  Row: {
                    "active": boolean,"category_id": string | null,"created_at": string,"currency": string,"description": string,"id": string,"name": string,"org_id": string,"price": number,"search": unknown,"sku": string | null,"stock": number | null,"updated_at": string,"url": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "active"?: boolean,"category_id"?: string | null,"created_at"?: string,"currency"?: string,"description"?: string,"id"?: string,"name": string,"org_id": string,"price": number,"search"?: never,"sku"?: string | null,"stock"?: number | null,"updated_at"?: string,"url"?: string | null
                  }
                  Update: {
                    "active"?: boolean,"category_id"?: string | null,"created_at"?: string,"currency"?: string,"description"?: string,"id"?: string,"name"?: string,"org_id"?: string,"price"?: number,"search"?: never,"sku"?: string | null,"stock"?: number | null,"updated_at"?: string,"url"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "products_category_fk"
      columns: ["category_id","org_id"]
isOneToOne: false
      referencedRelation: "catalog_categories"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "products_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"profiles": {
                  Row: {
                    "avatar_path": string | null,"created_at": string,"display_name": string | null,"locale": string,"time_zone": string,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "avatar_path"?: string | null,"created_at"?: string,"display_name"?: string | null,"locale"?: string,"time_zone"?: string,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "avatar_path"?: string | null,"created_at"?: string,"display_name"?: string | null,"locale"?: string,"time_zone"?: string,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"projects": {
                  Row: {
                    "created_at": string,"created_by": string | null,"description": string,"id": string,"name": string,"org_id": string,"updated_at": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"created_by"?: string | null,"description"?: string,"id"?: string,"name": string,"org_id": string,"updated_at"?: string
                  }
                  Update: {
                    "created_at"?: string,"created_by"?: string | null,"description"?: string,"id"?: string,"name"?: string,"org_id"?: string,"updated_at"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "projects_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"role_permissions": {
                  Row: {
                    "description": string,"min_role": Database["public"]['Enums']["org_role"],"permission": string
                  }
                  ComputedFields: never
                  Insert: {
                    "description": string,"min_role": Database["public"]['Enums']["org_role"],"permission": string
                  }
                  Update: {
                    "description"?: string,"min_role"?: Database["public"]['Enums']["org_role"],"permission"?: string
                  }
                  Relationships: [
                    
                  ]
                },"subscriptions": {
                  Row: {
                    "canceled_at": string | null,"created_at": string,"current_period_end": string,"current_period_start": string,"id": string,"org_id": string,"period_anchor_at": string | null,"plan_id": string,"scheduled_plan_id": string | null,"started_at": string,"status": Database["public"]['Enums']["subscription_status"]
                  }
                  ComputedFields: never
                  Insert: {
                    "canceled_at"?: string | null,"created_at"?: string,"current_period_end": string,"current_period_start": string,"id"?: string,"org_id": string,"period_anchor_at"?: string | null,"plan_id": string,"scheduled_plan_id"?: string | null,"started_at"?: string,"status"?: Database["public"]['Enums']["subscription_status"]
                  }
                  Update: {
                    "canceled_at"?: string | null,"created_at"?: string,"current_period_end"?: string,"current_period_start"?: string,"id"?: string,"org_id"?: string,"period_anchor_at"?: string | null,"plan_id"?: string,"scheduled_plan_id"?: string | null,"started_at"?: string,"status"?: Database["public"]['Enums']["subscription_status"]
                  }
                  Relationships: [
                    {
      foreignKeyName: "subscriptions_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscriptions_plan_id_fkey"
      columns: ["plan_id"]
isOneToOne: false
      referencedRelation: "plans"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "subscriptions_scheduled_plan_id_fkey"
      columns: ["scheduled_plan_id"]
isOneToOne: false
      referencedRelation: "plans"
      referencedColumns: ["id"]
    }
                  ]
                },"upload_batches": {
                  Row: {
                    "collection_id": string | null,"created_at": string,"created_by": string | null,"file_count": number,"id": string,"org_id": string,"project_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "collection_id"?: string | null,"created_at"?: string,"created_by"?: string | null,"file_count"?: number,"id"?: string,"org_id": string,"project_id"?: string | null
                  }
                  Update: {
                    "collection_id"?: string | null,"created_at"?: string,"created_by"?: string | null,"file_count"?: number,"id"?: string,"org_id"?: string,"project_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "upload_batches_collection_fk"
      columns: ["collection_id","org_id"]
isOneToOne: false
      referencedRelation: "collections"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "upload_batches_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "upload_batches_project_fk"
      columns: ["project_id","org_id"]
isOneToOne: false
      referencedRelation: "projects"
      referencedColumns: ["id","org_id"]
    }
                  ]
                },"usage_events": {
                  Row: {
                    "api_key_id": string | null,"bot_id": string | null,"conversation_id": string | null,"created_at": string,"document_id": string | null,"id": number,"kind": string,"model": string,"org_id": string,"tokens_in": number,"tokens_out": number,"user_id": string | null
                  }
                  ComputedFields: never
                  Insert: {
                    "api_key_id"?: string | null,"bot_id"?: string | null,"conversation_id"?: string | null,"created_at"?: string,"document_id"?: string | null,"id"?: never,"kind": string,"model": string,"org_id": string,"tokens_in"?: number,"tokens_out"?: number,"user_id"?: string | null
                  }
                  Update: {
                    "api_key_id"?: string | null,"bot_id"?: string | null,"conversation_id"?: string | null,"created_at"?: string,"document_id"?: string | null,"id"?: never,"kind"?: string,"model"?: string,"org_id"?: string,"tokens_in"?: number,"tokens_out"?: number,"user_id"?: string | null
                  }
                  Relationships: [
                    {
      foreignKeyName: "usage_events_api_key_id_fkey"
      columns: ["api_key_id"]
isOneToOne: false
      referencedRelation: "api_keys"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "usage_events_bot_fk"
      columns: ["bot_id","org_id"]
isOneToOne: false
      referencedRelation: "bots"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "usage_events_conversation_fk"
      columns: ["conversation_id","org_id"]
isOneToOne: false
      referencedRelation: "conversations"
      referencedColumns: ["id","org_id"]
    },{
      foreignKeyName: "usage_events_document_id_fkey"
      columns: ["document_id"]
isOneToOne: false
      referencedRelation: "documents"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "usage_events_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"user_settings": {
                  Row: {
                    "created_at": string,"email_notifications": boolean,"notification_overrides": NonNullable<Json>,"updated_at": string,"user_id": string
                  }
                  ComputedFields: never
                  Insert: {
                    "created_at"?: string,"email_notifications"?: boolean,"notification_overrides"?: NonNullable<Json>,"updated_at"?: string,"user_id": string
                  }
                  Update: {
                    "created_at"?: string,"email_notifications"?: boolean,"notification_overrides"?: NonNullable<Json>,"updated_at"?: string,"user_id"?: string
                  }
                  Relationships: [
                    
                  ]
                },"webhook_attempts": {
                  Row: {
                    "attempt_number": number,"delivery_id": string,"duration_ms": number,"endpoint_id": string,"error": string | null,"id": number,"org_id": string,"outcome": string,"response_body": string | null,"started_at": string,"status_code": number | null,"url": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempt_number": number,"delivery_id": string,"duration_ms": number,"endpoint_id": string,"error"?: string | null,"id"?: never,"org_id": string,"outcome": string,"response_body"?: string | null,"started_at": string,"status_code"?: number | null,"url": string
                  }
                  Update: {
                    "attempt_number"?: number,"delivery_id"?: string,"duration_ms"?: number,"endpoint_id"?: string,"error"?: string | null,"id"?: never,"org_id"?: string,"outcome"?: string,"response_body"?: string | null,"started_at"?: string,"status_code"?: number | null,"url"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "webhook_attempts_delivery_id_fkey"
      columns: ["delivery_id"]
isOneToOne: false
      referencedRelation: "webhook_deliveries"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "webhook_attempts_endpoint_id_fkey"
      columns: ["endpoint_id"]
isOneToOne: false
      referencedRelation: "webhook_endpoints"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "webhook_attempts_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                },"webhook_deliveries": {
                  Row: {
                    "attempt_count": number,"created_at": string,"endpoint_id": string,"event_id": string,"id": string,"last_attempt_at": string | null,"last_status_code": number | null,"locked_until": string | null,"next_attempt_at": string | null,"org_id": string,"replay_of": string | null,"requested_by": string | null,"status": string
                  }
                  ComputedFields: never
                  Insert: {
                    "attempt_count"?: number,"created_at"?: string,"endpoint_id": string,"event_id": string,"id"?: string,"last_attempt_at"?: string | null,"last_status_code"?: number | null,"locked_until"?: string | null,"next_attempt_at"?: string | null,"org_id": string,"replay_of"?: string | null,"requested_by"?: string | null,"status"?: string
                  }
                  Update: {
                    "attempt_count"?: number,"created_at"?: string,"endpoint_id"?: string,"event_id"?: string,"id"?: string,"last_attempt_at"?: string | null,"last_status_code"?: number | null,"locked_until"?: string | null,"next_attempt_at"?: string | null,"org_id"?: string,"replay_of"?: string | null,"requested_by"?: string | null,"status"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "webhook_deliveries_endpoint_id_fkey"
      columns: ["endpoint_id"]
isOneToOne: false
      referencedRelation: "webhook_endpoints"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "webhook_deliveries_event_id_fkey"
      columns: ["event_id"]
isOneToOne: false
      referencedRelation: "events"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "webhook_deliveries_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    },{
      foreignKeyName: "webhook_deliveries_replay_of_fkey"
      columns: ["replay_of"]
isOneToOne: false
      referencedRelation: "webhook_deliveries"
      referencedColumns: ["id"]
    }
                  ]
                },"webhook_endpoints": {
                  Row: {
                    "configured_by": string | null,"created_at": string,"created_by": string | null,"description": string,"disabled_at": string | null,"disabled_reason": string | null,"enabled": boolean,"event_types": (string)[],"failing_since": string | null,"id": string,"org_id": string,"rotated_at": string | null,"updated_at": string,"url": string
                  }
                  ComputedFields: never
                  Insert: {
                    "configured_by"?: string | null,"created_at"?: string,"created_by"?: string | null,"description"?: string,"disabled_at"?: string | null,"disabled_reason"?: string | null,"enabled"?: boolean,"event_types"?: (string)[],"failing_since"?: string | null,"id"?: string,"org_id": string,"rotated_at"?: string | null,"updated_at"?: string,"url": string
                  }
                  Update: {
                    "configured_by"?: string | null,"created_at"?: string,"created_by"?: string | null,"description"?: string,"disabled_at"?: string | null,"disabled_reason"?: string | null,"enabled"?: boolean,"event_types"?: (string)[],"failing_since"?: string | null,"id"?: string,"org_id"?: string,"rotated_at"?: string | null,"updated_at"?: string,"url"?: string
                  }
                  Relationships: [
                    {
      foreignKeyName: "webhook_endpoints_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                }
          }
          Views: {
            "upload_batch_progress": {
                  Row: {
                    "batch_id": string,"deleted": number | null,"failed": number | null,"files": number | null,"in_progress": number | null,"org_id": string,"percent": number | null,"ready": number | null
                  }
                  ComputedFields: never
                  Relationships: [
                    {
      foreignKeyName: "upload_batches_org_id_fkey"
      columns: ["org_id"]
isOneToOne: false
      referencedRelation: "organizations"
      referencedColumns: ["id"]
    }
                  ]
                }
          }
          Functions: {
            "accept_invitation":
{ Args: { "token": string }; Returns: {
              "created_at": string,
"org_id": string,
"role": Database["public"]['Enums']["org_role"],
"updated_at": string,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "memberships"
        isOneToOne: true
        isSetofReturn: false
      } },
"analytics_appointments":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"analytics_appointments_daily":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "booked": number,"by_bot": Json,"by_source": Json,"canceled": number,"completed": number,"day": string,"no_show": number,"rescheduled": number,"total": number
            }[]
                           },
"analytics_conversations_daily":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "by_bot": Json,"by_channel": Json,"closed": number,"day": string,"escalated": number,"started": number
            }[]
                           },
"analytics_dashboard_summary":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"analytics_engagement_daily":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "active_conversations": number,"avg_messages_per_conversation": number,"day": string,"end_users": number,"first_responses": number,"median_first_response_ms": number,"returning_users": number
            }[]
                           },
"analytics_knowledge":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"analytics_messages_daily":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "assistant_messages": number,"day": string,"system_messages": number,"tokens_in": number,"tokens_out": number,"total": number,"user_messages": number
            }[]
                           },
"analytics_team":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"analytics_uploads":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"analytics_usage":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"analytics_usage_daily":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "by_api_key": Json,"by_bot": Json,"chat_tokens_in": number,"chat_tokens_out": number,"day": string,"embedding_tokens_in": number,"embedding_tokens_out": number,"speech_tokens_in": number,"speech_tokens_out": number
            }[]
                           },
"begin_calendar_connection":
{ Args: { "bot_id"?: string,"code_verifier": string,"org_id": string,"provider": string,"redirect_to"?: string }; Returns: string
                           },
"call_stats_daily":
{ Args: { "bot_id"?: string,"from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "avg_duration_seconds": number,"busy": number,"canceled": number,"day": string,"ended": number,"failed": number,"negative": number,"neutral": number,"no_answer": number,"positive": number,"total": number,"unknown": number
            }[]
                           },
"call_stats_summary":
{ Args: { "bot_id"?: string,"from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: Json
                           },
"cancel_appointment":
{ Args: { "appointment_id": string,"reason"?: string }; Returns: {
              "attendee_email": string | null,
"attendee_name": string,
"attendee_phone": string | null,
"bot_id": string | null,
"call_id": string | null,
"cancel_reason": string | null,
"canceled_at": string | null,
"connection_id": string | null,
"conversation_id": string | null,
"created_at": string,
"created_by": string | null,
"ends_at": string,
"external_event_id": string | null,
"id": string,
"notes": string | null,
"org_id": string,
"reschedule_count": number,
"resource": string,
"source": string,
"starts_at": string,
"status": string,
"sync_attempts": number,
"sync_claimed_until": string | null,
"sync_error": string | null,
"sync_next_attempt_at": string | null,
"sync_status": string,
"sync_throttled_since": string | null,
"time_zone": string | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "appointments"
        isOneToOne: true
        isSetofReturn: false
      } },
"cancel_call":
{ Args: { "call_id": string }; Returns: {
              "analysis_attempts": number,
"analysis_requested_at": string | null,
"bot_id": string | null,
"callee_time_zone": string | null,
"campaign_id": string | null,
"conversation_id": string | null,
"cost": number | null,
"cost_breakdown": Json | null,
"cost_currency": string,
"created_at": string,
"created_by": string | null,
"dial_attempts": number,
"dial_lease_until": string | null,
"dial_lookups": number,
"dial_started_at": string | null,
"dial_target": Json | null,
"dial_throttled_since": string | null,
"direction": Database["public"]['Enums']["call_direction"],
"duration_seconds": number | null,
"ended_at": string | null,
"ended_event_id": string | null,
"ended_reason": string | null,
"from_number": string | null,
"has_transcript": boolean,
"id": string,
"last_dial_error": string | null,
"last_event_at": string | null,
"llm_latency_ms": number | null,
"next_dial_at": string | null,
"org_id": string,
"provider": string | null,
"provider_call_id": string | null,
"recording_path": string | null,
"recording_url": string | null,
"scheduled_at": string | null,
"sentiment": Database["public"]['Enums']["call_sentiment"],
"sentiment_score": number | null,
"started_at": string | null,
"started_event_id": string | null,
"status": Database["public"]['Enums']["call_status"],
"status_occurred_at": string,
"status_rank": number,
"stt_latency_ms": number | null,
"summary": string | null,
"to_number": string | null,
"transcript_final": boolean,
"tts_latency_ms": number | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "calls"
        isOneToOne: true
        isSetofReturn: false
      } },
"cancel_call_campaign":
{ Args: { "campaign_id": string }; Returns: number
                           },
"change_member_role":
{ Args: { "org_id": string,"role": Database["public"]['Enums']["org_role"],"user_id": string }; Returns: {
              "created_at": string,
"org_id": string,
"role": Database["public"]['Enums']["org_role"],
"updated_at": string,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "memberships"
        isOneToOne: true
        isSetofReturn: false
      } },
"change_plan":
{ Args: { "org_id": string,"plan_id": string }; Returns: {
              "canceled_at": string | null,
"created_at": string,
"current_period_end": string,
"current_period_start": string,
"id": string,
"org_id": string,
"period_anchor_at": string | null,
"plan_id": string,
"scheduled_plan_id": string | null,
"started_at": string,
"status": Database["public"]['Enums']["subscription_status"]
            }
                          SetofOptions: {
        from: "*"
        to: "subscriptions"
        isOneToOne: true
        isSetofReturn: false
      } },
"clear_bot_telegram":
{ Args: { "bot_id": string }; Returns: boolean
                           },
"close_conversation":
{ Args: { "conversation_id": string }; Returns: {
              "api_key_id": string | null,
"bot_id": string,
"channel": Database["public"]['Enums']["chat_channel"],
"closed_at": string | null,
"created_at": string,
"escalated_at": string | null,
"escalation_reason": string | null,
"external_conversation_id": string | null,
"external_user_id": string | null,
"id": string,
"last_message_at": string | null,
"message_count": number,
"org_id": string,
"status": Database["public"]['Enums']["conversation_status"],
"updated_at": string,
"user_id": string | null
            }
                          SetofOptions: {
        from: "*"
        to: "conversations"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_api_key":
{ Args: { "expires_at"?: string,"name": string,"org_id": string,"scopes": (string)[] }; Returns: Database["public"]['CompositeTypes']["new_api_key"]
                          SetofOptions: {
        from: "*"
        to: "new_api_key"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_appointment":
{ Args: { "attendee_email"?: string,"attendee_name": string,"attendee_phone"?: string,"bot_id"?: string,"call_id"?: string,"conversation_id"?: string,"ends_at": string,"notes"?: string,"org_id": string,"resource"?: string,"starts_at": string,"time_zone"?: string }; Returns: {
              "attendee_email": string | null,
"attendee_name": string,
"attendee_phone": string | null,
"bot_id": string | null,
"call_id": string | null,
"cancel_reason": string | null,
"canceled_at": string | null,
"connection_id": string | null,
"conversation_id": string | null,
"created_at": string,
"created_by": string | null,
"ends_at": string,
"external_event_id": string | null,
"id": string,
"notes": string | null,
"org_id": string,
"reschedule_count": number,
"resource": string,
"source": string,
"starts_at": string,
"status": string,
"sync_attempts": number,
"sync_claimed_until": string | null,
"sync_error": string | null,
"sync_next_attempt_at": string | null,
"sync_status": string,
"sync_throttled_since": string | null,
"time_zone": string | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "appointments"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_call_campaign":
{ Args: { "bot_id": string,"callee_time_zone"?: string,"idempotency_key"?: string,"name": string,"numbers": (string)[],"org_id": string,"scheduled_at"?: string }; Returns: {
              "calls_created": number,"campaign_id": string,"duplicates_removed": number,"invalid_numbers": (string)[]
            }[]
                           },
"create_call_provider_secret":
{ Args: { "org_id": string,"provider": string }; Returns: string
                           },
"create_organization":
{ Args: { "name": string,"slug"?: string }; Returns: {
              "created_at": string,
"created_by": string | null,
"id": string,
"name": string,
"slug": string,
"time_zone": string,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "organizations"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_outbound_call":
{ Args: { "bot_id": string,"callee_time_zone"?: string,"idempotency_key"?: string,"org_id": string,"scheduled_at"?: string,"to_number": string }; Returns: {
              "analysis_attempts": number,
"analysis_requested_at": string | null,
"bot_id": string | null,
"callee_time_zone": string | null,
"campaign_id": string | null,
"conversation_id": string | null,
"cost": number | null,
"cost_breakdown": Json | null,
"cost_currency": string,
"created_at": string,
"created_by": string | null,
"dial_attempts": number,
"dial_lease_until": string | null,
"dial_lookups": number,
"dial_started_at": string | null,
"dial_target": Json | null,
"dial_throttled_since": string | null,
"direction": Database["public"]['Enums']["call_direction"],
"duration_seconds": number | null,
"ended_at": string | null,
"ended_event_id": string | null,
"ended_reason": string | null,
"from_number": string | null,
"has_transcript": boolean,
"id": string,
"last_dial_error": string | null,
"last_event_at": string | null,
"llm_latency_ms": number | null,
"next_dial_at": string | null,
"org_id": string,
"provider": string | null,
"provider_call_id": string | null,
"recording_path": string | null,
"recording_url": string | null,
"scheduled_at": string | null,
"sentiment": Database["public"]['Enums']["call_sentiment"],
"sentiment_score": number | null,
"started_at": string | null,
"started_event_id": string | null,
"status": Database["public"]['Enums']["call_status"],
"status_occurred_at": string,
"status_rank": number,
"stt_latency_ms": number | null,
"summary": string | null,
"to_number": string | null,
"transcript_final": boolean,
"tts_latency_ms": number | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "calls"
        isOneToOne: true
        isSetofReturn: false
      } },
"create_upload_batch":
{ Args: { "collection_id"?: string,"files": Json,"org_id": string,"project_id"?: string }; Returns: {
              "batch_id": string | null,
"checksum_sha256": string | null,
"chunk_count": number,
"collection_id": string | null,
"content_sha256": string | null,
"created_at": string,
"created_by": string | null,
"deletion_started_at": string | null,
"embedding_model": string | null,
"failure_reason": string | null,
"id": string,
"ingest_attempts": number,
"ingest_cursor": number,
"ingest_deferred_since": string | null,
"ingest_model": string | null,
"ingest_run": string | null,
"ingest_stalls": number,
"ingest_started_at": string | null,
"ingest_wake_at": string | null,
"ingested_at": string | null,
"last_failure_reason": string | null,
"mime_type": string,
"name": string,
"org_id": string,
"page_count": number | null,
"progress": number,
"project_id": string | null,
"retried_at": string | null,
"size_bytes": number,
"status": Database["public"]['Enums']["document_status"],
"storage_path": string,
"updated_at": string
            }[]
                          SetofOptions: {
        from: "*"
        to: "documents"
        isOneToOne: false
        isSetofReturn: true
      } },
"delete_account":
{ Args: Record<PropertyKey, never>; Returns: undefined
                           },
"delete_organization":
{ Args: { "confirm_name": string,"org_id": string }; Returns: undefined
                           },
"disconnect_calendar":
{ Args: { "connection_id": string }; Returns: Record<string, unknown>
                           },
"invite_member":
{ Args: { "email": string,"org_id": string,"role"?: Database["public"]['Enums']["org_role"],"valid_for"?: string }; Returns: {
              "expires_at": string,"id": string,"token": string
            }[]
                           },
"leave_organization":
{ Args: { "org_id": string }; Returns: {
              "created_at": string,
"org_id": string,
"role": Database["public"]['Enums']["org_role"],
"updated_at": string,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "memberships"
        isOneToOne: true
        isSetofReturn: false
      } },
"match_bot_chunks":
{ Args: { "bot_id": string,"match_count"?: number,"query_embedding": string,"query_model"?: string,"query_text"?: string }; Returns: {
              "chunk_id": number,"collection_id": string,"content": string,"document_id": string,"document_name": string,"page_end": number,"page_start": number,"score": number,"text_rank": number,"vector_rank": number
            }[]
                           },
"match_document_chunks":
{ Args: { "collection_ids"?: (string)[],"match_count"?: number,"org_id": string,"query_embedding": string,"query_model"?: string,"query_text"?: string }; Returns: {
              "chunk_id": number,"collection_id": string,"content": string,"document_id": string,"document_name": string,"page_end": number,"page_start": number,"score": number,"text_rank": number,"vector_rank": number
            }[]
                           },
"match_document_chunks_by_text":
{ Args: { "collection_ids"?: (string)[],"match_count"?: number,"org_id": string,"query_text": string }; Returns: {
              "chunk_id": number,"collection_id": string,"content": string,"document_id": string,"document_name": string,"page_end": number,"page_start": number,"score": number,"text_rank": number,"vector_rank": number
            }[]
                           },
"match_products":
{ Args: { "match_count"?: number,"org_id": string,"question": string }; Returns: Database["public"]['CompositeTypes']["product_search_result"][]
                          SetofOptions: {
        from: "*"
        to: "product_search_result"
        isOneToOne: false
        isSetofReturn: true
      } },
"my_permissions":
{ Args: { "org_id": string }; Returns: string[]
                           },
"plan_usage":
{ Args: { "org_id": string }; Returns: {
              "included": number,"metric": string,"used": number
            }[]
                           },
"remove_member":
{ Args: { "org_id": string,"user_id": string }; Returns: {
              "created_at": string,
"org_id": string,
"role": Database["public"]['Enums']["org_role"],
"updated_at": string,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "memberships"
        isOneToOne: true
        isSetofReturn: false
      } },
"request_data_export":
{ Args: { "org_id": string }; Returns: {
              "attempts_at_cursor": number,
"created_at": string,
"cursor": NonNullable<Json>,
"error": string | null,
"expired_at": string | null,
"expires_at": string | null,
"finished_at": string | null,
"id": string,
"lease_until": string | null,
"org_id": string,
"progress_percent": number,
"requested_by": string | null,
"status": Database["public"]['Enums']["data_export_status"],
"steps": number,
"storage_prefix": string,
"tables": (string)[],
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "data_exports"
        isOneToOne: true
        isSetofReturn: false
      } },
"reschedule_appointment":
{ Args: { "appointment_id": string,"ends_at": string,"starts_at": string }; Returns: {
              "attendee_email": string | null,
"attendee_name": string,
"attendee_phone": string | null,
"bot_id": string | null,
"call_id": string | null,
"cancel_reason": string | null,
"canceled_at": string | null,
"connection_id": string | null,
"conversation_id": string | null,
"created_at": string,
"created_by": string | null,
"ends_at": string,
"external_event_id": string | null,
"id": string,
"notes": string | null,
"org_id": string,
"reschedule_count": number,
"resource": string,
"source": string,
"starts_at": string,
"status": string,
"sync_attempts": number,
"sync_claimed_until": string | null,
"sync_error": string | null,
"sync_next_attempt_at": string | null,
"sync_status": string,
"sync_throttled_since": string | null,
"time_zone": string | null,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "appointments"
        isOneToOne: true
        isSetofReturn: false
      } },
"resend_invitation":
{ Args: { "invitation_id": string,"valid_for"?: string }; Returns: {
              "expires_at": string,"id": string,"token": string
            }[]
                           },
"retry_document":
{ Args: { "document_id": string }; Returns: {
              "batch_id": string | null,
"checksum_sha256": string | null,
"chunk_count": number,
"collection_id": string | null,
"content_sha256": string | null,
"created_at": string,
"created_by": string | null,
"deletion_started_at": string | null,
"embedding_model": string | null,
"failure_reason": string | null,
"id": string,
"ingest_attempts": number,
"ingest_cursor": number,
"ingest_deferred_since": string | null,
"ingest_model": string | null,
"ingest_run": string | null,
"ingest_stalls": number,
"ingest_started_at": string | null,
"ingest_wake_at": string | null,
"ingested_at": string | null,
"last_failure_reason": string | null,
"mime_type": string,
"name": string,
"org_id": string,
"page_count": number | null,
"progress": number,
"project_id": string | null,
"retried_at": string | null,
"size_bytes": number,
"status": Database["public"]['Enums']["document_status"],
"storage_path": string,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "documents"
        isOneToOne: true
        isSetofReturn: false
      } },
"revoke_api_key":
{ Args: { "api_key_id": string }; Returns: {
              "created_at": string,
"created_by": string | null,
"expires_at": string | null,
"id": string,
"last_used_at": string | null,
"name": string,
"org_id": string,
"prefix": string,
"rate_limit_per_minute": number,
"revoked_at": string | null,
"revoked_by": string | null,
"scopes": (string)[]
            }
                          SetofOptions: {
        from: "*"
        to: "api_keys"
        isOneToOne: true
        isSetofReturn: false
      } },
"revoke_invitation":
{ Args: { "invitation_id": string }; Returns: {
              "accepted_at": string | null,
"accepted_by": string | null,
"created_at": string,
"email": string,
"expires_at": string,
"id": string,
"invited_by": string | null,
"last_sent_at": string,
"org_id": string,
"revoked_at": string | null,
"revoked_by": string | null,
"role": Database["public"]['Enums']["org_role"],
"send_count": number
            }
                          SetofOptions: {
        from: "*"
        to: "invitations"
        isOneToOne: true
        isSetofReturn: false
      } },
"rotate_call_provider_secret":
{ Args: { "org_id": string,"overlap_hours"?: number,"provider": string }; Returns: {
              "previous_secret_valid_until": string,"secret": string
            }[]
                           },
"search_products":
{ Args: { "active_only"?: boolean,"category_id"?: string,"include_subcategories"?: boolean,"match_count"?: number,"max_price"?: number,"min_price"?: number,"offset_count"?: number,"org_id": string,"query"?: string }; Returns: Database["public"]['CompositeTypes']["product_search_result"][]
                          SetofOptions: {
        from: "*"
        to: "product_search_result"
        isOneToOne: false
        isSetofReturn: true
      } },
"set_api_key_rate_limit":
{ Args: { "api_key_id": string,"per_minute": number }; Returns: {
              "created_at": string,
"created_by": string | null,
"expires_at": string | null,
"id": string,
"last_used_at": string | null,
"name": string,
"org_id": string,
"prefix": string,
"rate_limit_per_minute": number,
"revoked_at": string | null,
"revoked_by": string | null,
"scopes": (string)[]
            }
                          SetofOptions: {
        from: "*"
        to: "api_keys"
        isOneToOne: true
        isSetofReturn: false
      } },
"set_bot_telegram":
{ Args: { "bot_id": string,"bot_token": string }; Returns: {
              "secret_token": string,"webhook_path": string
            }[]
                           },
"set_call_provider_outbound":
{ Args: { "org_id": string,"phone_number_id": string,"provider": string }; Returns: {
              "created_at": string,
"created_by": string | null,
"org_id": string,
"outbound_phone_number_id": string | null,
"previous_secret_valid_until": string | null,
"provider": string,
"secret_created_at": string,
"updated_at": string
            }
                          SetofOptions: {
        from: "*"
        to: "call_providers"
        isOneToOne: true
        isSetofReturn: false
      } },
"transfer_ownership":
{ Args: { "new_owner_id": string,"org_id": string }; Returns: {
              "created_at": string,
"org_id": string,
"role": Database["public"]['Enums']["org_role"],
"updated_at": string,
"user_id": string
            }
                          SetofOptions: {
        from: "*"
        to: "memberships"
        isOneToOne: true
        isSetofReturn: false
      } },
"usage_daily":
{ Args: { "from_date": string,"org_id": string,"time_zone"?: string,"to_date": string }; Returns: {
              "day": string,"kind": string,"tokens_in": number,"tokens_out": number
            }[]
                           },
"usage_totals":
{ Args: { "org_id": string }; Returns: {
              "kind": string,"tokens_in_24h": number,"tokens_in_7d": number,"tokens_out_24h": number,"tokens_out_7d": number
            }[]
                           },
"verify_audit_chain":
{ Args: { "from_seq"?: number,"max_rows"?: number,"org_id": string }; Returns: {
              "first_invalid_seq": number,"next_seq": number,"reason": string,"rows_checked": number,"valid": boolean
            }[]
                           }
          }
          Enums: {
            "bot_escalation_action": "notify"|"transfer"|"log","call_direction": "inbound"|"outbound"|"web","call_sentiment": "positive"|"neutral"|"negative"|"unknown","call_status": "queued"|"ringing"|"in_progress"|"ended"|"failed"|"canceled"|"no_answer"|"busy","chat_channel": "web"|"telegram"|"voice"|"api","conversation_status": "open"|"escalated"|"closed","data_export_status": "queued"|"running"|"ready"|"failed","document_status": "uploading"|"queued"|"processing"|"ready"|"failed","message_role": "user"|"assistant"|"system","org_role": "viewer"|"member"|"admin"|"owner","subscription_status": "active"|"canceled"
          }
          CompositeTypes: {
            "new_api_key": {
                        "id": string | null,"key": string | null,"prefix": string | null,"scopes": (string)[] | null,"expires_at": string | null
                      },"product_search_result": {
                        "id": string | null,"org_id": string | null,"category_id": string | null,"name": string | null,"description": string | null,"price": number | null,"currency": string | null,"stock": number | null,"sku": string | null,"url": string | null,"active": boolean | null,"created_at": string | null,"updated_at": string | null,"category_name": string | null,"score": number | null
                      }
          }
        }
}

type DatabaseWithoutInternals = Omit<Database, '__InternalSupabase'>

type DefaultSchema = DatabaseWithoutInternals[Extract<keyof Database, "public">]

export type Tables<
  DefaultSchemaTableNameOrOptions extends
    | keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
        DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? (DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"] &
      DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Views"])[TableName] extends {
      Row: infer R
    }
    ? R
    : never
  : DefaultSchemaTableNameOrOptions extends keyof (DefaultSchema["Tables"] & DefaultSchema["Views"])
  ? (DefaultSchema["Tables"] & DefaultSchema["Views"])[DefaultSchemaTableNameOrOptions] extends {
      Row: infer R
    }
    ? R
    : never
  : never

export type TablesInsert<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Insert: infer I
    }
    ? I
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Insert: infer I
    }
    ? I
    : never
  : never

export type TablesUpdate<
  DefaultSchemaTableNameOrOptions extends
    | keyof DefaultSchema["Tables"]
    | { schema: keyof DatabaseWithoutInternals },
  TableName extends DefaultSchemaTableNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"]
    : never = never
> = DefaultSchemaTableNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaTableNameOrOptions["schema"]]["Tables"][TableName] extends {
      Update: infer U
    }
    ? U
    : never
  : DefaultSchemaTableNameOrOptions extends keyof DefaultSchema["Tables"]
  ? DefaultSchema["Tables"][DefaultSchemaTableNameOrOptions] extends {
      Update: infer U
    }
    ? U
    : never
  : never

export type Enums<
  DefaultSchemaEnumNameOrOptions extends
    | keyof DefaultSchema["Enums"]
    | { schema: keyof DatabaseWithoutInternals },
  EnumName extends DefaultSchemaEnumNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"]
    : never = never
> = DefaultSchemaEnumNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[DefaultSchemaEnumNameOrOptions["schema"]]["Enums"][EnumName]
  : DefaultSchemaEnumNameOrOptions extends keyof DefaultSchema["Enums"]
  ? DefaultSchema["Enums"][DefaultSchemaEnumNameOrOptions]
  : never

export type CompositeTypes<
  PublicCompositeTypeNameOrOptions extends
    | keyof DefaultSchema["CompositeTypes"]
    | { schema: keyof DatabaseWithoutInternals },
  CompositeTypeName extends PublicCompositeTypeNameOrOptions extends {
    schema: keyof DatabaseWithoutInternals
  }
    ? keyof DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"]
    : never = never
> = PublicCompositeTypeNameOrOptions extends { schema: keyof DatabaseWithoutInternals }
  ? DatabaseWithoutInternals[PublicCompositeTypeNameOrOptions["schema"]]["CompositeTypes"][CompositeTypeName]
  : PublicCompositeTypeNameOrOptions extends keyof DefaultSchema["CompositeTypes"]
  ? DefaultSchema["CompositeTypes"][PublicCompositeTypeNameOrOptions]
  : never

export const Constants = {
  "graphql_public": {
          Enums: {
            
          }
        },"public": {
          Enums: {
            "bot_escalation_action": ["notify", "transfer", "log"],"call_direction": ["inbound", "outbound", "web"],"call_sentiment": ["positive", "neutral", "negative", "unknown"],"call_status": ["queued", "ringing", "in_progress", "ended", "failed", "canceled", "no_answer", "busy"],"chat_channel": ["web", "telegram", "voice", "api"],"conversation_status": ["open", "escalated", "closed"],"data_export_status": ["queued", "running", "ready", "failed"],"document_status": ["uploading", "queued", "processing", "ready", "failed"],"message_role": ["user", "assistant", "system"],"org_role": ["viewer", "member", "admin", "owner"],"subscription_status": ["active", "canceled"]
          }
        }
} as const
