#!/bin/sh
# docker-compose.yml's Kafka (apache/kafka image): one KRaft node with SASL logins and ACLs, the same
# security as scripts/kafka.sh. Clients log in with SCRAM-SHA-512 on SASL_PLAINTEXT (the compose
# network and 127.0.0.1:9094 on the host; terminate TLS here in production: SASL_SSL); the controller
# listener takes SASL/PLAIN with one static user whose password is made at every start; nothing is
# allowed without an ACL (`ido kafka provision`, the kafka-provision service, writes them).
#
# The admin's password comes from the compose secret ido-admin.password; it is put into files of mode
# 0600 under /tmp/ido-kafka only, and into the SCRAM credential the data dir is formatted with.
set -eu
umask 077
SECRET=/run/secrets/ido-admin.password
[ -s "$SECRET" ] || { echo "kafka: the secret $SECRET is missing (see docker-compose.yml)" >&2; exit 1; }
ADMIN_PW="$(tr -d '[:space:]' <"$SECRET")"
CONTROLLER_PW="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
CONF=/tmp/ido-kafka
DATA=/var/lib/kafka/data
mkdir -p "$CONF"
SCRAM="org.apache.kafka.common.security.scram.ScramLoginModule required"
PLAIN="org.apache.kafka.common.security.plain.PlainLoginModule required"
cat >"$CONF/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@kafka:9093
controller.listener.names=CONTROLLER
listeners=INTERNAL://:9092,CONTROLLER://:9093,HOST://:9094
advertised.listeners=INTERNAL://kafka:9092,HOST://127.0.0.1:9094
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,INTERNAL:SASL_PLAINTEXT,HOST:SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$SCRAM username="ido-admin" password="$ADMIN_PW";
listener.name.host.scram-sha-512.sasl.jaas.config=$SCRAM;
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$PLAIN username="ido-controller" password="$CONTROLLER_PW" user_ido-controller="$CONTROLLER_PW";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:ido-admin;User:ido-controller
log.dirs=$DATA
num.partitions=3
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES
# The healthcheck's login (kafka-broker-api-versions.sh --command-config).
cat >"$CONF/admin.properties" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$SCRAM username="ido-admin" password="$ADMIN_PW";
PROPERTIES
if [ ! -f "$DATA/meta.properties" ]; then
    # The admin's SCRAM credential goes into the metadata at format time (KIP-900): it exists before
    # anyone can log in. (The argument is visible only inside this container, for the format's second.)
    /opt/kafka/bin/kafka-storage.sh format -t "${CLUSTER_ID:?set CLUSTER_ID}" -c "$CONF/server.properties" \
        --add-scram "SCRAM-SHA-512=[name=ido-admin,password=$ADMIN_PW]" >/dev/null
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONF/server.properties"
