include $(sort $(wildcard $(BR2_EXTERNAL_PORTICO_PATH)/package/*/*.mk))
