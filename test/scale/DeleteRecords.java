import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.RecordsToDelete;
import org.apache.kafka.common.TopicPartition;

/**
 * Deletes the records of topic partitions below an offset (what the input topics' retention does
 * to old data). Kafka's own kafka-delete-records.sh is not in the broker's libs, and node-rdkafka
 * has no deleteRecords. Run with the broker's jars: java -cp '.cache/kafka/libs/*' DeleteRecords.java
 * <brokers> <topic>:<partition>:<beforeOffset>...
 */
public class DeleteRecords {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    Map<TopicPartition, RecordsToDelete> what = new HashMap<>();
    for (int i = 1; i < args.length; i++) {
      String a = args[i];
      int j = a.lastIndexOf(':');
      int k = a.lastIndexOf(':', j - 1);
      what.put(new TopicPartition(a.substring(0, k), Integer.parseInt(a.substring(k + 1, j))), RecordsToDelete.beforeOffset(Long.parseLong(a.substring(j + 1))));
    }
    try (Admin admin = Admin.create(props)) {
      admin.deleteRecords(what).all().get();
    }
    System.out.println("deleted " + what.size());
  }
}
