-- org:<org_id>:calls and org:<org_id>:appointments are sent on by the
-- database only.
--
-- Both carry row changes the database broadcasts (private.broadcast_org_change:
-- a call's status, transcript segments, an appointment booked or moved), and
-- every dashboard of the org shows what arrives as such. Registered with the
-- default users_send, they let any member holding the channel's permission
-- insert a broadcast of their own on them (a call "ended", an appointment
-- "canceled") that the others could not tell from the database's; uploads was
-- closed for the same reason in 20261123003400. No client sends on these
-- channels. Receiving is unchanged.

update private.narrowed_channels set users_send = false where channel in ('calls', 'appointments');
