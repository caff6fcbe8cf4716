-- Web push: a contact channel 'webpush' whose target is a browser's push subscription JSON
-- ({"endpoint": ..., "keys": {"auth": ..., "p256dh": ...}}), added by the signed-in user.
ALTER TABLE contact_channels DROP CONSTRAINT contact_channels_channel_check;
ALTER TABLE contact_channels ADD CONSTRAINT contact_channels_channel_check
    CHECK (channel IN ('webhook', 'email', 'apprise', 'console', 'webpush'));
-- One browser subscription belongs to one person (found by endpoint when a push service
-- says it is gone, or when another person subscribes on the same browser).
CREATE INDEX contact_channels_webpush_endpoint ON contact_channels ((target::jsonb->>'endpoint'))
    WHERE channel = 'webpush';
