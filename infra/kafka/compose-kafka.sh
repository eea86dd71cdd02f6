#!/bin/sh
# docker-compose.yml's Kafka (apache/kafka image): one KRaft node with SASL logins and ACLs, the same
# security as scripts/kafka.sh. Clients log in with SCRAM-SHA-512 on SASL_PLAINTEXT (the compose
# network and 127.0.0.1:9094 on the host; terminate TLS here in production: SASL_SSL); the controller
# listener takes SASL/PLAIN with one static user whose password is made at every start; nothing is
# allowed without an ACL (`ido kafka provision`, the kafka-provision service, writes them).
#
# The admin's password comes from the compose secret ido-admin.password; it is put into files of mode
# 0600 under /tmp/ido-kafka only, and into the SCRAM credential the data dir is formatted with.
#
# The same script runs each node of the three-broker cluster (docker-compose.yml, profile "cluster"; the
# settings of scripts/kafka-cluster.sh): KAFKA_NODE_ID, KAFKA_QUORUM_VOTERS, KAFKA_ADVERTISED_HOST,
# KAFKA_HOST_PORT, KAFKA_REPLICATION_FACTOR and KAFKA_MIN_INSYNC_REPLICAS, and the controllers' shared
# password from the secret ido-controller.password (they log in to each other). Unset, they are the
# single node's: node 1, a quorum of one, one copy, a controller password new at every start.
set -eu
umask 077
SECRET=/run/secrets/ido-admin.password
[ -s "$SECRET" ] || { echo "kafka: the secret $SECRET is missing (see docker-compose.yml)" >&2; exit 1; }
ADMIN_PW="$(tr -d '[:space:]' <"$SECRET")"
CONTROLLER_SECRET=/run/secrets/ido-controller.password
if [ -s "$CONTROLLER_SECRET" ]; then
    CONTROLLER_PW="$(tr -d '[:space:]' <"$CONTROLLER_SECRET")"
else
    CONTROLLER_PW="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
fi
NODE_ID="${KAFKA_NODE_ID:-1}"
VOTERS="${KAFKA_QUORUM_VOTERS:-1@kafka:9093}"
ADVERTISED="${KAFKA_ADVERTISED_HOST:-kafka}"
HOST_PORT="${KAFKA_HOST_PORT:-9094}"
RF="${KAFKA_REPLICATION_FACTOR:-1}"
MIN_ISR="${KAFKA_MIN_INSYNC_REPLICAS:-1}"
CONF=/tmp/ido-kafka
DATA=/var/lib/kafka/data
mkdir -p "$CONF"
SCRAM="org.apache.kafka.common.security.scram.ScramLoginModule required"
PLAIN="org.apache.kafka.common.security.plain.PlainLoginModule required"
cat >"$CONF/server.properties" <<PROPERTIES
process.roles=broker,controller
node.id=$NODE_ID
controller.quorum.voters=$VOTERS
controller.listener.names=CONTROLLER
listeners=INTERNAL://:9092,CONTROLLER://:9093,HOST://:$HOST_PORT
advertised.listeners=INTERNAL://$ADVERTISED:9092,HOST://127.0.0.1:$HOST_PORT
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
default.replication.factor=$RF
min.insync.replicas=$MIN_ISR
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor=$RF
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$RF
transaction.state.log.min.isr=$MIN_ISR
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$RF
share.coordinator.state.topic.min.isr=$MIN_ISR
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
