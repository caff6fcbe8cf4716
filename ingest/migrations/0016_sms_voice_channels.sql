-- China's SMS (Aliyun / Tencent Cloud) and voice calls (Aliyun) as contact channels
-- (alerts/notify/cn_cloud.py). Their target is a phone number in E.164 form (+8613800000000).
ALTER TABLE contact_channels DROP CONSTRAINT contact_channels_channel_check;
ALTER TABLE contact_channels ADD CONSTRAINT contact_channels_channel_check
    CHECK (channel IN ('webhook', 'email', 'apprise', 'console', 'webpush', 'sms', 'voice'));
ALTER TABLE contact_channels ADD CONSTRAINT contact_channels_phone_check
    CHECK (channel NOT IN ('sms', 'voice') OR target ~ '^\+[1-9][0-9]{6,14}$');
