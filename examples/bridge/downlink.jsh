// Sends one downlink message with the official RocketMQ Java client, from the command line (JDK 17's jshell):
//   jshell -R-Dnamesrv=127.0.0.1:9876 -R-DmqttTopic=cmd/d1 -R-Dbody=reboot --class-path "$CP" examples/bridge/downlink.jsh
// where $CP lists the RocketMQ client jars (docs/bridge.md shows where `npm run rocketmq:start` keeps them).
import org.apache.rocketmq.client.producer.DefaultMQProducer;
import org.apache.rocketmq.common.message.Message;
var producer = new DefaultMQProducer("my_service_producer");
producer.setNamesrvAddr(System.getProperty("namesrv", "127.0.0.1:9876"));
producer.start();
var command = new Message(System.getProperty("topic", "iotb_downlink"), System.getProperty("body", "reboot").getBytes("UTF-8"));
command.putUserProperty("mqtt_topic", System.getProperty("mqttTopic", "cmd/d1"));
command.putUserProperty("mqtt_qos", System.getProperty("qos", "1"));
System.out.println(producer.send(command).getSendStatus());
producer.shutdown();
/exit
